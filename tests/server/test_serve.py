"""`mingpian serve` as users start it: a real process that says where it listens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_its_address_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MINGPIAN_PORT": str(port), "MINGPIAN_DATA_DIR": str(tmp_path / "var")}
    proc = subprocess.Popen([sys.executable, "-m", "mingpian", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert f"http://127.0.0.1:{port}" in first
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.load(r)["status"] == "ok"
                break
            except OSError:
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.1)
        assert (tmp_path / "var").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    log_lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r.get("route") == "/healthz" and r.get("status") == 200 for r in log_lines)
