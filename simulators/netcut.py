"""A network namespace of its own for one worker, to cut it off from a service and restore it.

`Netns` makes a namespace and a veth pair on a private /30 (the host keeps .1, the namespace
.2), so a process started inside it (`prefix()` + its command: `ip netns exec <name>`) reaches
the host's PostgreSQL, Redis and SMSC only through that link, at the host side's address. Then
`cut(port)` drops the namespace's packets to one service's port (an nftables rule in the
namespace: a silent partition, as a broken link gives; or, with `reset`, refused with a TCP
reset, as a host that is up without the service) and
`restore(port)` takes the rule out again; `down()`/`up()` take the whole link away.

Needs root, `ip` (iproute2) and `nft` (Debian package nftables: scripts/system-deps.sh);
`missing()` says what is lacking, for a test's skip."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

_numbers = itertools.count()


def missing() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` not found: run scripts/system-deps.sh (Debian package {package})"
    probe = f"mpprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=10)


class Netns:
    """One namespace and its veth link; `host` is the address services listen on for it."""

    def __init__(self) -> None:
        n = (os.getpid() * 7 + next(_numbers)) % 16000
        self.name = f"mpf{os.getpid()}x{n}"
        self.outer = f"mpo{n}"  # interface names are at most 15 characters
        self.inner = f"mpi{n}"
        net = 4 * n  # a /30 of 10.213.0.0/16 (16000 of them)
        self.host = f"10.213.{net // 256}.{net % 256 + 1}"
        self.address = f"10.213.{net // 256}.{net % 256 + 2}"
        self.cuts: dict[int, str] = {}  # port → the rule's handle

    def start(self) -> None:
        _run("ip", "netns", "add", self.name)
        _run("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _run("ip", "link", "set", self.inner, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host}/30", "dev", self.outer)
        _run("ip", "link", "set", self.outer, "up")
        self.exec("ip", "addr", "add", f"{self.address}/30", "dev", self.inner)
        self.exec("ip", "link", "set", self.inner, "up")
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("nft", "add", "table", "inet", "mpcut")
        self.exec("nft", "add", "chain", "inet", "mpcut", "out", "{ type filter hook output priority 0 ; }")

    def exec(self, *args: str) -> None:
        _run("ip", "netns", "exec", self.name, *args)

    def prefix(self) -> list[str]:
        """What a command is prefixed with to run inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self, port: int, reset: bool = False) -> None:
        """Drop every packet the namespace sends to `port` (at any address): silence, as a
        partition; with `reset`, answer each with a TCP reset instead, as a host that refuses."""
        verdict = ["reject", "with", "tcp", "reset"] if reset else ["drop"]
        out = subprocess.run(
            [*self.prefix(), "nft", "--echo", "--handle", "add", "rule", "inet", "mpcut", "out",
             "tcp", "dport", str(port), *verdict],
            check=True, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        self.cuts[port] = out.stdout.rsplit("# handle", 1)[1].split()[0]

    def restore(self, port: int) -> None:
        self.exec("nft", "delete", "rule", "inet", "mpcut", "out", "handle", self.cuts.pop(port))

    def down(self) -> None:
        _run("ip", "link", "set", self.outer, "down")

    def up(self) -> None:
        _run("ip", "link", "set", self.outer, "up")

    def stop(self) -> None:
        """Remove the namespace (its end of the link goes with it, and so the host's)."""
        subprocess.run(["ip", "link", "del", self.outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
