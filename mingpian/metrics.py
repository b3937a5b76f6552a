"""Prometheus text-format metrics without a client library, for the whole host: counters,
histograms and gauges; the exposition format is text 0.0.4
(https://prometheus.io/docs/instrumenting/exposition_formats/).

## One host, several workers

`mingpian serve --workers N` runs N processes behind one port and a scrape reaches one of them,
yet each must report the host. Each worker keeps its counters and histograms in plain dicts (no
locks: one asyncio loop) and publishes them as one small JSON file,
`data_dir/metrics/<pid>-<token>.json` (written under a temporary name, then renamed: a reader
sees a whole file), every second and whenever it answers a scrape. `/metrics` sums every file of
the folder (its own just written) and `retired.json`, the counts of the workers that are gone.

- **Counters never go backwards between two scrapes, whichever worker answers.** Everything a
  scrape sums comes from a file, and each file only grows: a worker's counts are never shown
  ahead of its file, so one answering after another cannot report less. The price: another
  worker's counts are up to a second old.
- **A worker that stops** (SIGTERM, a graceful restart) adds its counts to `retired.json` and
  removes its file. **One that dies** (SIGKILL, a crash) is found by pid by any live worker,
  within a second, which folds its file into `retired.json` (under a lock, recording the file's
  id so that no count is added twice, nor missed by a scrape reading at the same time). A dead
  worker's counts are therefore kept, less what it counted after its last write (≤ 1 s).
- **`mingpian serve` empties the folder when it starts**: a restarted server counts from zero,
  a reset Prometheus handles (every series restarts at once; `rate()` and `increase()` allow
  for it). Apps made by `create_app` alone (tests, embedding) keep what the folder holds.
- **Gauges** are not summed. Those of a worker (chains running, SMPP sessions) are one series per
  live worker, labelled `worker="<pid>"`: from the files of workers whose pid is alive and that
  wrote within `STALE` seconds. Those of the shared store (queue depth, receipts pending) are
  read by the answering worker at the scrape: the same whoever answers.

With one worker a scrape returns that process's values, as before (plus any retired counts of a
previous app on the same `data_dir` not restarted through `serve`). Processes sharing a
`data_dir` count as one host; the folder must be on a local disk (pids are this host's).

## Why not prometheus_client's multiprocess mode

It aggregates per-worker mmap files at scrape, much the same idea, but costs the hot path. Measured
with timeit on this machine (best of several runs; docs/metrics.md has the figures): one counter
`inc` and one histogram `observe` with labels, what the middleware does per request, take ~0.5 µs here
against ~5.5 µs with prometheus_client 0.26 in one process and ~7.6 µs in its multiprocess mode
(a `labels()` lookup and a lock per call, mmap writes): at ~6k requests/s per worker, ~4 % of a
core more. Here the hot path is unchanged (~0.5 µs before and after); publishing a busy worker's
file (~10 kB) takes ~0.35 ms once a second, ~60 ns per request at 6k requests/s; a scrape
merging 4 busy workers takes ~5 ms (~3 ms of it the text, as with one). prometheus_client would
also need its own exposition, an environment variable set before import, and a gunicorn hook
for dead workers' gauges.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from .metrics_host import HostFolder, Totals, pid_alive

log = logging.getLogger("mingpian.metrics")
LabelValues = tuple[str, ...]
DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PUBLISH_EVERY = 1.0  # seconds between a worker's files
STALE = 5.0  # seconds after which a worker that has not written is left out of the gauges
QUEUE_EVERY = 1.0  # seconds a reading of the delivery store's queue is reused


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.values: dict[LabelValues, float] = {}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        self.values[values] = self.values.get(values, 0.0) + amount

    def set_total(self, total: float, *values: str) -> None:
        """For a count kept elsewhere (read by a collector): its running total."""
        self.values[values] = float(total)

    def dump(self) -> list[Any]:
        return [[lv, v] for lv, v in self.values.items()]

    def expose(self, values: dict[LabelValues, float] | None = None) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for lv, v in sorted((self.values if values is None else values).items()):
            yield f"{self.name}{_labels(self.labels, lv)} {v:g}"


class Histogram:
    def __init__(
        self, name: str, help_: str, labels: tuple[str, ...], buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_, labels, buckets
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, seconds: float, *values: str) -> None:
        counts = self.counts.get(values)
        if counts is None:
            counts = self.counts[values] = [0] * (len(self.buckets) + 1)
            self.sums[values] = 0.0
        counts[bisect_left(self.buckets, seconds)] += 1
        self.sums[values] += seconds

    def dump(self) -> list[Any]:
        return [[lv, counts, self.sums[lv]] for lv, counts in self.counts.items()]

    def expose(
        self, counts: dict[LabelValues, list[int]] | None = None, sums: dict[LabelValues, float] | None = None
    ) -> Iterable[str]:
        counts, sums = (self.counts, self.sums) if counts is None or sums is None else (counts, sums)
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for lv, per_bucket in sorted(counts.items()):
            running = 0
            for bound, c in zip(self.buckets, per_bucket, strict=False):
                running += c
                le = 'le="' + format(bound, "g") + '"'
                yield f"{self.name}_bucket{_labels(self.labels, lv, le)} {running}"
            running += per_bucket[-1]
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.labels, lv, inf)} {running}"
            yield f"{self.name}_sum{_labels(self.labels, lv)} {sums[lv]:.6f}"
            yield f"{self.name}_count{_labels(self.labels, lv)} {running}"


class Gauge:
    """A value now. `per_worker`: one series per live worker (a `worker` label, the pid, comes
    first); else the answering worker's reading of something shared (the store)."""

    def __init__(self, name: str, help_: str, labels: tuple[str, ...], *, per_worker: bool = True) -> None:
        self.name, self.help, self.per_worker = name, help_, per_worker
        self.labels = ("worker", *labels) if per_worker else labels
        self.values: dict[LabelValues, float] = {}  # without the worker label

    def set(self, value: float, *values: str) -> None:
        self.values[values] = float(value)

    def dump(self) -> list[Any]:
        return [[lv, v] for lv, v in self.values.items()]

    def expose(self, values: dict[LabelValues, float]) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for lv, v in sorted(values.items(), key=lambda item: (_worker_order(item[0]), item[0])):
            yield f"{self.name}{_labels(self.labels, lv)} {v:g}"


def _worker_order(lv: LabelValues) -> int:
    return int(lv[0]) if lv and lv[0].isdigit() else 0


Family = Counter | Histogram | Gauge


class Metrics:
    """The server's metric families. Features may `register` more, add `collectors` (called
    before every reading: set gauges, copy counts kept elsewhere) and `refreshers` (awaited
    before a scrape: readings that need I/O, such as the store's queue)."""

    def __init__(self) -> None:
        self.requests = Counter(
            "mingpian_http_requests_total",
            "HTTP requests by route and status.",
            ("method", "route", "status"),
        )
        self.latency = Histogram(
            "mingpian_http_request_duration_seconds", "HTTP request latency by route.", ("method", "route")
        )
        self.render = Histogram(
            "mingpian_render_duration_seconds",
            "Time to render a template (validate, bind, check, serialize).",
            ("template", "format"),
        )
        self.render_errors = Counter(
            "mingpian_render_errors_total",
            "Renders that ended in a user-facing error, by kind.",
            ("template", "kind"),
        )
        self.workers = Gauge(
            "mingpian_metrics_workers",
            "Live worker processes whose metrics this scrape merged (the answering one included).",
            (),
            per_worker=False,
        )
        # delivery (fed by watch_delivery and the service's on_outcome)
        self.delivery_attempts = Counter(
            "mingpian_delivery_attempts_total",
            "Delivery attempts that reached a final state, by channel and outcome (delivered, displayed, "
            "failed, timeout, error, skipped, refused).",
            ("channel", "outcome"),
        )
        self.delivery_taken_over = Counter(
            "mingpian_delivery_chains_taken_over_total",
            "Delivery chains a worker started from the store: resumed at its start, or taken over "
            "from a worker whose lease ran out.",
            (),
        )
        self.delivery_active = Gauge(
            "mingpian_delivery_active_chains", "Delivery chains running in this worker.", ()
        )
        self.delivery_smpp = Gauge(
            "mingpian_delivery_smpp_sessions",
            "This worker's SMPP sessions: bound, and configured (delivery_smpp_binds).",
            ("state",),
        )
        self.delivery_queue = Gauge(
            "mingpian_delivery_queue_depth",
            "Deliveries still active in the store (every worker's and host's: the same whoever answers).",
            (),
            per_worker=False,
        )
        self.delivery_receipts = Gauge(
            "mingpian_delivery_receipts_pending",
            "Active deliveries whose current attempt was submitted and waits for its receipt (the store's).",
            (),
            per_worker=False,
        )
        self._families: list[Family] = [
            self.requests,
            self.latency,
            self.render,
            self.render_errors,
            self.workers,
            self.delivery_attempts,
            self.delivery_taken_over,
            self.delivery_active,
            self.delivery_smpp,
            self.delivery_queue,
            self.delivery_receipts,
        ]
        self.collectors: list[Callable[[], None]] = []
        self.refreshers: list[Callable[[], Awaitable[None]]] = []
        self.host: HostFolder | None = None

    def register(self, family: Family) -> Family:
        self._families.append(family)
        return family

    # -- this worker's values ----------------------------------------------------------------------
    def _collect(self) -> None:
        for collect in self.collectors:
            try:
                collect()
            except Exception:  # a broken reading must not take /metrics down
                log.exception("metrics collector failed")

    def snapshot(self) -> dict[str, Any]:
        """This worker's counters, histograms and per-worker gauges, as its file holds them."""
        self._collect()
        doc: dict[str, Any] = {"pid": os.getpid(), "at": time.time(), "counters": {}, "histograms": {}}
        gauges: dict[str, Any] = {}
        for fam in self._families:
            if isinstance(fam, Counter):
                doc["counters"][fam.name] = fam.dump()
            elif isinstance(fam, Histogram):
                doc["histograms"][fam.name] = fam.dump()
            elif fam.per_worker:
                gauges[fam.name] = fam.dump()
        doc["gauges"] = gauges
        return doc

    # -- the host's folder -------------------------------------------------------------------------
    def share(self, folder: Path) -> None:
        """Publish this worker's values in `folder` and report the host's from now on (this
        worker's alone, with an error in the log, if the folder cannot be made)."""
        try:
            self.host = HostFolder(folder)
        except OSError:
            log.exception("metrics: cannot use %s; /metrics reports this worker alone", folder)
            return
        self.publish()

    def publish(self) -> None:
        if self.host is None:
            return
        try:
            self.host.publish(self.snapshot())
            self.host.fold_dead()
        except Exception:  # the next second tries again
            log.exception("metrics: cannot publish to %s", self.host.folder)

    def unshare(self) -> None:
        """This worker stops: its counts go to retired.json, so the host's totals keep them."""
        host, self.host = self.host, None
        if host is not None:
            try:
                host.retire(self.snapshot())
            except OSError:
                log.exception("metrics: cannot retire into %s", host.folder)

    async def refresh(self) -> None:
        for refresh in self.refreshers:
            try:
                await refresh()
            except Exception:
                log.exception("metrics refresher failed")

    # -- exposition --------------------------------------------------------------------------------
    def expose(self) -> str:
        """The host's metrics as Prometheus text (this worker's alone when not sharing)."""
        own = self.snapshot()
        own_id = "self"
        totals = Totals()
        gauges: dict[str, dict[LabelValues, float]] = {}
        docs: list[tuple[str, int, dict[str, Any]]] = []
        if self.host is not None:
            own_id = self.host.id
            retired: dict[str, Any] = {}
            try:
                self.host.publish(own)  # first: what this scrape shows, a later one shows too
                docs = list(self.host.others())  # read before retired.json (see HostFolder._fold)
                retired = self.host.retired()
            except OSError:
                log.exception("metrics: cannot use %s; this scrape reports this worker", self.host.folder)
                docs = []
            absorbed = retired.get("absorbed") or {}
            totals.add(retired)
            docs = [d for d in docs if d[0] not in absorbed]
        docs.append((own_id, os.getpid(), own))
        now, live = time.time(), 0
        for wid, pid, doc in docs:
            totals.add(doc)
            if wid == own_id or (pid_alive(pid) and now - float(doc.get("at", 0)) < STALE):
                live += 1
                worker = str(pid)
                for name, rows in (doc.get("gauges") or {}).items():
                    into = gauges.setdefault(name, {})
                    for lv, v in rows:
                        into[(worker, *lv)] = v
        self.workers.set(live)
        plural = "s" if live != 1 else ""
        scope = f"the host's {live} live worker{plural}" if self.host is not None else "this worker alone"
        lines: list[str] = [f"# mingpian: {scope}, answered by worker {os.getpid()}"]
        for fam in self._families:
            if isinstance(fam, Counter):
                lines.extend(fam.expose(totals.counters.get(fam.name, {})))
            elif isinstance(fam, Histogram):
                rows = totals.histograms.get(fam.name, {})
                rows = {lv: cs for lv, cs in rows.items() if len(cs[0]) == len(fam.buckets) + 1}
                lines.extend(
                    fam.expose({lv: c for lv, (c, _) in rows.items()}, {lv: s for lv, (_, s) in rows.items()})
                )
            elif fam.per_worker:
                lines.extend(fam.expose(gauges.get(fam.name, {})))
            else:
                lines.extend(fam.expose(fam.values))
        return "\n".join(lines) + "\n"


class DeliveryReadings(Protocol):
    """What `watch_delivery` reads of the delivery service (delivery/service.py)."""

    def stats(self) -> dict[str, int]: ...
    async def queue(self) -> tuple[int, int]: ...


def watch_delivery(metrics: Metrics, service: DeliveryReadings) -> Callable[[], None]:
    """Feed the delivery gauges and the taken-over counter from `service`; the function that stops
    it (reading one last time). Attempt outcomes come through the service's `on_outcome`."""

    def collect() -> None:
        s = service.stats()
        metrics.delivery_active.set(s["active_chains"])
        metrics.delivery_smpp.set(s["smpp_bound"], "bound")
        metrics.delivery_smpp.set(s["smpp_configured"], "configured")
        metrics.delivery_taken_over.set_total(s["taken_over"])

    read_at = float("-inf")
    reading: asyncio.Task[None] | None = None

    async def read() -> None:
        try:
            active, waiting = await service.queue()
        except Exception as exc:  # the database is away: no reading rather than an old one
            metrics.delivery_queue.values.clear()
            metrics.delivery_receipts.values.clear()
            log.warning("metrics: the delivery queue cannot be read: %s: %s", type(exc).__name__, exc)
            return
        metrics.delivery_queue.set(active)
        metrics.delivery_receipts.set(waiting)

    async def refresh() -> None:
        """One query a second at most; scrapes arriving meanwhile share the one under way."""
        nonlocal read_at, reading
        if reading is None and time.monotonic() - read_at >= QUEUE_EVERY:
            read_at = time.monotonic()
            # a fresh context: the read must not run in a store transaction of the caller
            reading = asyncio.get_running_loop().create_task(read(), context=contextvars.Context())
            reading.add_done_callback(lambda _f: _clear())
        if reading is not None:
            await asyncio.shield(reading)

    def _clear() -> None:
        nonlocal reading
        reading = None

    metrics.collectors.append(collect)
    metrics.refreshers.append(refresh)

    def unwatch() -> None:
        collect()
        metrics.collectors.remove(collect)
        metrics.refreshers.remove(refresh)

    return unwatch
