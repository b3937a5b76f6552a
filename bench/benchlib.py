"""Plumbing the benchmarks share: free ports, waiting for a server to listen, a throw-away
redis-server, and CPU time from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(settings: dict[str, str], log: Path, root: Path | None = None) -> subprocess.Popen[bytes]:
    """`mingpian serve` from this checkout (or from the source tree `root`, e.g. a worktree of an
    older commit) with `settings` (MINGPIAN_… variables) over a clean environment (none of the
    caller's MINGPIAN_ ones), its log in `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env["MINGPIAN_DEMO"] = "off"  # a bench measures the server, not the demo's simulators
    env.update(settings)
    if root is not None:
        env["PYTHONPATH"] = str(root)
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"],
            env=env,
            cwd=root or Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


async def wait_port(port: int, timeout: float = 20) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(port)


@contextlib.asynccontextmanager
async def redis_server(tmp: Path, on_start: Callable[[int], None] | None = None) -> AsyncIterator[str | None]:
    """A throw-away redis-server on a free port (no persistence); yields its URL, or None when
    the binary is missing (scripts/system-deps.sh installs it). `on_start` gets its pid."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if on_start is not None:
        on_start(proc.pid)
    try:
        await wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


# ---- CPU time from the processes' own counters (/proc) -----------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds: user + system of the process and of its children it has reaped)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


def descendants(root: int) -> list[int]:
    """Every live process under `root` (not `root` itself), from /proc's parent links."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None:
                parent[int(entry.name)] = st[0]
    found, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        frontier += kids
    return found


def children(pid: int) -> list[int]:
    """The live direct children of `pid` (e.g. gunicorn's workers under its master)."""
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None and st[0] == pid:
                kids.append(int(entry.name))
    return sorted(kids)


def tree_cpu(root: int) -> float:
    """CPU seconds of a process tree: the root and every live descendant, each with the children
    it has reaped (so a process that exits between two readings is still counted, once)."""
    total = 0.0
    for pid in [root, *descendants(root)]:
        st = _proc_stat(pid)
        if st is not None:
            total += st[1]
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def wrk(
    url: str, seconds: float, connections: int, body: bytes | None = None, paths: list[str] | None = None
) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) from Debian's wrk (one thread): POSTs `body` as JSON when
    given, cycles through `paths` of `url` when given. Every answer must be 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if body is not None:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
            f.write("wrk.body = [==[" + body.decode() + "]==]\n")  # Lua long string: raw UTF-8
        if paths:
            f.write("paths = {" + ",".join(f'"{p}"' for p in paths) + "}\ni = 0\n")
            f.write("request = function()\n  i = i % #paths + 1\n  return wrk.format(nil, paths[i])\nend\n")
        f.write(
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("RESULT %f %f %d\\n", summary.requests / (summary.duration / 1e6),'
            " latency:percentile(99) / 1000, summary.errors.status))\nend\n"
        )
        script = f.name
    try:
        res = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(script)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT"))
    _, rps, p99, errors = line.split()
    if int(errors):
        raise SystemExit(f"wrk saw {errors} non-2xx responses for {url}")
    return float(rps), float(p99)
