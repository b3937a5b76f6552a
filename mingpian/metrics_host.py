"""The host's metrics folder: each worker's published counts (`<pid>-<token>.json`), the counts of
the workers that are gone (`retired.json`), and summing them. mingpian/metrics.py says why the
counts are shared this way; this module is the file handling only.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("mingpian.metrics")
LabelValues = tuple[str, ...]
ABSORBED_KEEP = 60.0  # seconds retired.json remembers the id of a file it absorbed
RETIRED = "retired.json"


class Totals:
    """Counters and histograms summed over documents (a worker's file, `retired.json`)."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[LabelValues, float]] = {}
        self.histograms: dict[str, dict[LabelValues, tuple[list[int], float]]] = {}

    def add(self, doc: dict[str, Any]) -> None:
        for name, rows in (doc.get("counters") or {}).items():
            into = self.counters.setdefault(name, {})
            for lv, v in rows:
                key = tuple(lv)
                into[key] = into.get(key, 0.0) + v
        for name, rows in (doc.get("histograms") or {}).items():
            hinto = self.histograms.setdefault(name, {})
            for lv, counts, total in rows:
                key = tuple(lv)
                had = hinto.get(key)
                if had is None:
                    hinto[key] = (list(counts), total)
                elif len(had[0]) == len(counts):  # other buckets (another version's file): left out
                    hinto[key] = ([a + b for a, b in zip(had[0], counts, strict=True)], had[1] + total)

    def doc(self) -> dict[str, Any]:
        return {
            "counters": {n: [[lv, v] for lv, v in rows.items()] for n, rows in self.counters.items()},
            "histograms": {
                n: [[lv, c, s] for lv, (c, s) in rows.items()] for n, rows in self.histograms.items()
            },
        }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _pid_of(path: Path) -> int | None:
    head = path.stem.partition("-")[0]
    return int(head) if head.isdigit() else None


def reset_folder(folder: Path) -> None:
    """Forget every count of the folder: `mingpian serve` starting a new server. A folder that
    cannot be emptied is left (the workers say so in the log when they cannot write to it)."""
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            if path.suffix in (".json", ".tmp"):
                path.unlink(missing_ok=True)


class HostFolder:
    """This worker's place in the host's metrics folder: its file, the others', `retired.json`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = os.getpid()
        self.id = f"{self.pid}-{secrets.token_hex(4)}"
        self.path = folder / f"{self.id}.json"
        self._tmp = folder / f".{self.id}.tmp"
        folder.mkdir(parents=True, exist_ok=True)

    def _write(self, path: Path, tmp: Path, doc: dict[str, Any]) -> None:
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, path)

    def publish(self, doc: dict[str, Any]) -> None:
        self._write(self.path, self._tmp, doc)

    def others(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """(id, pid, document) of every other worker file; one being replaced or folded is skipped."""
        for path in self.folder.glob("*.json"):
            pid = _pid_of(path)
            if pid is None or path == self.path:
                continue
            try:
                doc = orjson.loads(path.read_bytes())
            except (FileNotFoundError, orjson.JSONDecodeError):
                continue
            yield path.stem, pid, doc

    def retired(self) -> dict[str, Any]:
        try:
            return orjson.loads((self.folder / RETIRED).read_bytes())  # type: ignore[no-any-return]
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _fold(self, docs: list[tuple[str, dict[str, Any] | None]]) -> None:
        """Add documents (None: read the file of that id) to retired.json, then remove their files.
        Under the lock; an id already absorbed (a fold interrupted before the unlink) is not
        added again. Readers skip files whose id retired.json lists, so none is counted twice."""
        now = time.time()
        with self._locked():
            retired = self.retired()
            absorbed: dict[str, float] = retired.get("absorbed") or {}
            totals = Totals()
            totals.add(retired)
            done = []
            for wid, doc in docs:
                path = self.folder / f"{wid}.json"
                if wid not in absorbed:
                    if doc is None:
                        try:
                            doc = orjson.loads(path.read_bytes())
                        except FileNotFoundError:
                            continue
                        except orjson.JSONDecodeError:
                            doc = {}  # not one of ours as written (rename is atomic): dropped
                    totals.add(doc)
                    absorbed[wid] = now
                done.append(path)
            absorbed = {
                wid: at
                for wid, at in absorbed.items()
                if now - at < ABSORBED_KEEP or (self.folder / f"{wid}.json").exists()
            }
            self._write(
                self.folder / RETIRED, self.folder / ".retired.tmp", {**totals.doc(), "absorbed": absorbed}
            )
            for path in done:
                path.unlink(missing_ok=True)

    def fold_dead(self) -> int:
        """Fold the files of workers whose process is gone; how many."""
        dead = []
        for path in self.folder.glob("*.json"):
            pid = _pid_of(path)
            if pid is not None and not pid_alive(pid):
                dead.append((path.stem, None))
        if dead:
            self._fold(dead)
        return len(dead)

    def retire(self, doc: dict[str, Any]) -> None:
        """This worker stops: its last counts into retired.json, its file removed."""
        self._fold([(self.id, doc)])
