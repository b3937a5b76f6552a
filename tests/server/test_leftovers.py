"""Nothing left behind when the server dies, however it dies: a real server process with media
workers running is killed with SIGKILL, and its worker processes and multiprocessing's resource
tracker exit too; the studio preview folder it could not remove is removed at the next start,
while a live process's folder stays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mingpian.settings import PROJECT_ROOT
from tests.support.processes import free_port, wait_port


def _children(pid: int) -> dict[int, str]:
    """Every process whose parent is `pid`, with its command line."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out[int(entry.name)] = cmd
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _serve(var: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(
        MINGPIAN_PORT=str(port),
        MINGPIAN_DATA_DIR=str(var),
        MINGPIAN_MEDIA_WORKERS="2",
        MINGPIAN_LOG_LEVEL="ERROR",
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=out
        )
    wait_port(port, proc, timeout=30)
    return proc


def _render_png(port: int, name: str) -> None:
    sample = (PROJECT_ROOT / "card_templates" / name / "sample.json").read_bytes()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/templates/{name}/render?format=png",
        data=sample,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200 and resp.read(8) == b"\x89PNG\r\n\x1a\n"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_server_leaves_no_processes_and_its_preview_folder_goes_at_the_next_start(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    var.mkdir()
    # a folder of a process that died, one of a live process (this test), one of an older release
    dead = var / "studio-preview-dead"
    dead.mkdir()
    (dead / "owner.pid").write_text(str(_dead_pid()))
    live = var / "studio-preview-live"
    live.mkdir()
    (live / "owner.pid").write_text(str(os.getpid()))
    old = var / "studio-preview-old"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    port = free_port()
    proc = _serve(var, port, tmp_path / "server.log")
    try:
        assert not dead.exists() and not old.exists() and live.exists()
        mine = [f for f in var.glob("studio-preview-*") if f != live]
        assert len(mine) == 1 and (mine[0] / "owner.pid").read_text() == str(proc.pid)
        _render_png(port, "courier-hangup")
        _render_png(port, "bank-identity")
        children = _children(proc.pid)
        workers = [p for p, cmd in children.items() if "spawn_main" in cmd]
        trackers = [p for p, cmd in children.items() if "resource_tracker" in cmd]
        assert workers and trackers, children
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.05)
    left = {p: children[p] for p in children if _alive(p)}
    assert not left, f"left running after kill -9: {left}"
    assert mine[0].exists()  # the killed server could not remove it ...
    proc = _serve(var, port, tmp_path / "server.log")
    try:  # ... the next start does
        assert not mine[0].exists() and live.exists()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert json.load(r)["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert not [f for f in var.glob("studio-preview-*") if f != live]  # a clean stop removes its own
