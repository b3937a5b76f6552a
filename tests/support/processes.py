"""Real processes in tests: a `mingpian serve` started with settings from the environment, a
throwaway PostgreSQL server for a fixture's life, and (from simulators/servers.py, shared with
the benchmarks) a free local port and waiting until something listens on it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.servers import PostgresCluster, free_port, pg_bin, wait_port

__all__ = ["free_port", "running_cluster", "serve", "wait_port"]


def running_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server while the fixture that yields from it lives, or a skip
    saying how to get one."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL not found: run scripts/system-deps.sh (Debian package postgresql)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def serve(settings: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`mingpian serve` with only these MINGPIAN_* settings (MINGPIAN_PORT among them), its output
    appended to `log`; returns once it listens. The demo is off unless the settings turn it on:
    what these tests start is the server, not the simulated carrier network beside it."""
    from mingpian.settings import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    env["MINGPIAN_DEMO"] = "off"
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
