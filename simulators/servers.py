"""Throw-away real servers for tests and benchmarks: a PostgreSQL cluster and a redis-server on
free loopback ports, which a run can stop, freeze and start again (outages); free ports and
waiting for a process to listen; and where Debian's Chromium is, with the flags it runs with.

These are not simulators: they are the real programs, started in a temp folder and thrown away.
They live in this package because the test suite and the benchmarks both start them, and a
benchmark imports nothing from tests/ (tests/support keeps what only the tests use).

PostgreSQL: `initdb` + `pg_ctl` from Debian's postgresql package, trust authentication, a fresh
database per test. Run as root (CI), the server runs as the `postgres` system user: initdb refuses
root. A server can be given a streaming standby (`standby()`: `pg_basebackup -R`, on a port of its
own), be killed as a crashed host would be (`kill()`: SIGKILL to the postmaster) and a standby be
promoted (`promote()`), for failover tests; `multi_host_url` names both for a client."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# Debian's Chromium, driven by Playwright's own driver (never a downloaded browser).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


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

    def __init__(self, bindir: Path, durable: bool = False, settings: dict[str, str] | None = None) -> None:
        self.bindir = bindir
        self.durable = durable
        self.settings = dict(settings or {})  # more server settings (`-c name=value`), last say
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
        more = "".join(f" -c {name}={value}" for name, value in self.settings.items())
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {relaxed}-c max_connections=200"
            f"{more}"
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
            if self.running():
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def running(self) -> bool:
        """Whether its postmaster is alive (not after `kill`, nor before `start`)."""
        try:
            stat = Path(f"/proc/{self._postmaster()}/stat").read_text()
        except (FileNotFoundError, ValueError, IndexError):
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie is dead, not yet reaped

    # -- replication and failover ----------------------------------------------------------------
    def standby(self, settings: dict[str, str] | None = None) -> PostgresCluster:
        """A streaming standby of this (running) server, started: a base backup with `-R` (it
        writes `primary_conninfo` and `standby.signal`) in a folder and on a port of its own."""
        other = PostgresCluster(self.bindir, self.durable, {**self.settings, **(settings or {})})
        if os.geteuid() == 0:
            shutil.chown(other.root, "postgres")
        self._run(self.bindir / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                  "-D", other.data, "-R", "-X", "stream", "-c", "fast", "--no-sync")  # fmt: skip
        other.resume()
        return other

    def sql(self, statement: str, database: str = "postgres") -> str:
        """One statement through psql; its output, unaligned, without headers."""
        cmd = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
               "-d", database, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", statement]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def wait_streaming(self, sync: bool = False, timeout: float = 15.0) -> None:
        """Until a standby streams from this server (and, with `sync`, is its synchronous one)."""
        want = "sync" if sync else "%"
        query = (
            f"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state LIKE '{want}'"
        )
        deadline = time.monotonic() + timeout
        while self.sql(query) == "0":
            if time.monotonic() > deadline:
                kind = "synchronous standby" if sync else "standby"
                raise TimeoutError(f"no {kind} streams from port {self.port}")
            time.sleep(0.05)

    def make_synchronous(self) -> None:
        """Commits wait until a standby has their WAL (`synchronous_standby_names = '*'`; the
        server must run with `synchronous_commit = on`, given in `settings`: a test server's
        command line turns it off otherwise): a failover loses no acknowledged commit. Set after
        the base backup, so a promoted standby does not wait for a standby of its own."""
        if self.sql("SHOW synchronous_commit") != "on":
            raise RuntimeError("synchronous replication needs synchronous_commit = on")
        self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.sql("SELECT pg_reload_conf()")
        self.wait_streaming(sync=True)

    def fence(self) -> None:
        """Take no more writes, existing sessions included (`default_transaction_read_only`),
        and keep streaming: how a switchover retires a primary that is still alive."""
        self.sql("ALTER SYSTEM SET default_transaction_read_only = on")
        self.sql("SELECT pg_reload_conf()")

    def wait_replayed(self, primary: PostgresCluster, timeout: float = 15.0) -> None:
        """Until this standby has replayed all the WAL `primary` has written so far."""
        lsn = primary.sql("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while self.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") != "t":
            if time.monotonic() > deadline:
                raise TimeoutError(f"standby on port {self.port} has not replayed up to {lsn}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crashed host: no shutdown, no last WAL sent. Its backends
        and WAL sender end by themselves once they find it gone."""
        os.kill(self._postmaster(), signal.SIGKILL)

    def promote(self) -> None:
        """A standby becomes a writable primary (`pg_ctl promote`, returning once it accepts writes)."""
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-w", "promote")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def multi_host_url(self, *others: PostgresCluster, database: str = "postgres") -> str:
        """One URL naming this server and `others`, for a client that picks the writable one."""
        hosts = ",".join(f"127.0.0.1:{c.port}" for c in (self, *others))
        return f"postgresql://{self.user}@{hosts}/{database}?target_session_attrs=read-write"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.url(name)


class RedisServer:
    """A redis-server process that a run can stop and start again on the same port (an outage)."""

    def __init__(self, folder: Path, bind: str = "127.0.0.1") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server not found: run scripts/system-deps.sh")
        self.binary = binary
        self.folder = folder
        self.bind = bind  # more addresses than loopback ("127.0.0.1 10.213.0.1"): no protected mode
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again: keeping nothing, as a restarted cache without persistence would)."""
        protected = "yes" if self.bind == "127.0.0.1" else "no"
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", *self.bind.split(), "--dir", str(self.folder),
             "--save", "", "--appendonly", "no", "--protected-mode", protected],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port, self.proc)

    def freeze(self) -> None:
        """SIGSTOP it: connections stay open and nothing is answered (a hung host)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
