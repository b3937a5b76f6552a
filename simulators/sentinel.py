"""A throw-away highly available Redis for tests and benchmarks: a master, its replicas and three
Redis Sentinels (`redis-server --sentinel`, each with its own config file), on free loopback
ports in a temp folder. A run kills the master (SIGKILL) and the sentinels promote a replica,
as they would when the master's host dies.

The sentinels decide fast (`down_after` 1 s by default), so a test's failover takes seconds;
a deployment keeps Redis's defaults or near them (docs/operations.md, Redis)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import redis

from .servers import free_port, wait_port

SERVICE = "mingpian"  # the master's name the sentinels monitor


class SentinelGroup:
    def __init__(
        self,
        folder: Path,
        *,
        replicas: int = 2,
        sentinels: int = 3,
        down_after: float = 1.0,
        password: str = "",
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server not found: run scripts/system-deps.sh")
        self.binary = binary
        self.folder = folder
        self.down_after = down_after
        self.password = password  # the servers' (requirepass, masterauth); the sentinels have none
        self.ports = [free_port() for _ in range(1 + replicas)]  # the first is the master at start
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The `redis_url` setting that reaches the master through the sentinels."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        login = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis+sentinel://{login}{hosts}/{SERVICE}/0"

    def _spawn(self, port: int, args: list[str]) -> None:
        log = (self.folder / f"{port}.log").open("ab")
        self.procs[port] = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(port, self.procs[port])

    def start(self, timeout: float = 30.0) -> None:
        """Start them all; return once every sentinel knows every replica and the other sentinels."""
        master = self.ports[0]
        for port in self.ports:
            data = self.folder / f"redis-{port}"
            data.mkdir(exist_ok=True)
            args = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "",
                    "--appendonly", "no", "--repl-diskless-sync-delay", "0"]  # fmt: skip
            if port != master:
                args += ["--replicaof", "127.0.0.1", str(master)]
            if self.password:
                args += ["--requirepass", self.password, "--masterauth", self.password]
            self._spawn(port, args)
        ms = int(self.down_after * 1000)
        for port in self.sentinel_ports:
            conf = self.folder / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} {len(self.sentinel_ports) // 2 + 1}\n"
                f"sentinel down-after-milliseconds {SERVICE} {ms}\n"
                f"sentinel failover-timeout {SERVICE} {max(3 * ms, 3000)}\n"
                f"sentinel parallel-syncs {SERVICE} {len(self.ports)}\n"
                + (f"sentinel auth-pass {SERVICE} {self.password}\n" if self.password else "")
            )
            self._spawn(port, [str(conf), "--sentinel"])
        self.wait_settled(timeout)

    def wait_settled(self, timeout: float = 30.0) -> None:
        """Return once every live replica follows the master the sentinels name, in sync."""
        deadline = time.monotonic() + timeout
        while not self._settled():
            if time.monotonic() > deadline:
                raise TimeoutError("the replicas did not settle on the master")
            time.sleep(0.1)

    def _live(self) -> int:
        return sum(1 for p in self.procs.values() if p.poll() is None)

    def _settled(self) -> bool:
        """Every live replica in sync with the master, every sentinel aware of them and of each
        other (the sentinels keep counting a dead replica, so they are asked for at least)."""
        replicas = self._live() - len(self.sentinel_ports) - 1
        try:
            with self.client(self.master_port()) as r:
                info = r.info("replication")
        except redis.RedisError:
            return False
        online = [v for k, v in info.items() if k.startswith("slave") and v.get("state") == "online"]
        if info.get("role") != "master" or len(online) < replicas:
            return False
        for port in self.sentinel_ports:
            with redis.Redis(port=port, socket_timeout=1) as s:
                m = s.sentinel_master(SERVICE)
                others = m["num-other-sentinels"]
                if m["num-slaves"] < replicas or others < len(self.sentinel_ports) - 1:
                    return False
        return True

    def master_port(self) -> int:
        """The master's port as the sentinels now name it."""
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=1) as s:
            return int(s.sentinel_get_master_addr_by_name(SERVICE)[1])

    def kill_master(self) -> int:
        """SIGKILL the master (a dead host: nothing is flushed, nothing said); its port."""
        port = self.master_port()
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return port

    def wait_promoted(self, old: int, timeout: float = 30.0) -> int:
        """The port of the replica the sentinels promoted in place of `old`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.master_port()
            except redis.RedisError:
                port = old
            if port != old:
                return port
            time.sleep(0.05)
        raise TimeoutError("no replica was promoted")

    def client(self, port: int) -> redis.Redis:
        """A client of one server (or sentinel) of the group, logged in where it needs it."""
        login = self.password if self.password and port not in self.sentinel_ports else None
        return redis.Redis(port=port, password=login, decode_responses=True, socket_timeout=2)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
