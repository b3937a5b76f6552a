"""A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` from Debian's postgresql package,
in a temp folder, on a free loopback port, trust authentication. Each test gets a fresh database.

Run as root (CI), the server runs as the `postgres` system user: initdb refuses root."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .processes import free_port, wait_port


def pg_bin() -> Path | None:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """`durable`: fsync, synchronous_commit and full-page writes on, as a deployment runs it (the
    benchmarks); off by default, for the tests, which crash nothing but processes."""

    def __init__(self, bindir: Path, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mingpian-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._databases = 0

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(self.bindir / "initdb", "-D", self.data, "-A", "trust", "-U", self.user, "-E", "UTF8",
                  "--no-locale", "--no-sync")  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the server on its data folder and port (again, after `halt`)."""
        relaxed = "" if self.durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {relaxed}-c max_connections=200"
        )
        self._run(
            self.bindir / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "log", "-w", "start"
        )
        wait_port(self.port)

    def halt(self, mode: str = "fast") -> None:
        """Stop the server and keep its data (an outage): `fast` ends the sessions, `immediate` crashes."""
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: sockets stay open and nothing is answered,
        as with a hung host or a partition without resets. (Each backend is a session of its
        own, so they are found as the postmaster's children, not as its process group.)"""
        postmaster = self._postmaster()
        os.kill(postmaster, signal.SIGSTOP)  # first: a stopped postmaster forks no new backends
        self._signal(self._children(postmaster), signal.SIGSTOP)

    def thaw(self) -> None:
        postmaster = self._postmaster()
        self._signal(self._children(postmaster), signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)

    @staticmethod
    def _signal(pids: list[int], sig: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # a backend that ended meanwhile
                os.kill(pid, sig)

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    @staticmethod
    def _children(postmaster: int) -> list[int]:
        return [int(p) for p in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()]

    def stop(self) -> None:
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.url(name)
