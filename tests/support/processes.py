"""Real processes in tests: a free local port, waiting until something listens on it, and a
`mingpian serve` started with settings from the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


def serve(settings: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`mingpian serve` with only these MINGPIAN_* settings (MINGPIAN_PORT among them), its output
    appended to `log`; returns once it listens."""
    from mingpian.settings import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env.update(settings)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve", *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_port(int(settings["MINGPIAN_PORT"]), proc, timeout=30)
    return proc
