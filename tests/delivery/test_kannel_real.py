"""The real Kannel (Debian's bearerbox + smsbox) between us and the SMSC simulator: our flash /
SMS go through Kannel's HTTP sendsms, Kannel speaks SMPP 3.4 to the simulator, the simulator's
deliver_sm receipts come back through Kannel's dlr-url to us. Skipped where Kannel is absent
(scripts/system-deps.sh installs it)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mingpian.api.delivery import delivery_key

from .support import (
    CUSTOMER,
    AppFactory,
    Rule,
    call,
    seed_doc,
    settle,
)
from .support import GatewaySim as _GS

BEARERBOX = shutil.which("bearerbox") or "/usr/sbin/bearerbox"
SMSBOX = shutil.which("smsbox") or "/usr/sbin/smsbox"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened: {log.read_text(errors='replace')[-2000:]}")


CONF = """group = core
admin-port = {admin}
admin-password = bench
smsbox-port = {box}
box-allow-ip = 127.0.0.1
log-file = "{dir}/bearerbox.log"
log-level = 1
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smpp}
transceiver-mode = true
smsc-username = mingpian
smsc-password = secret
system-type = ""
enquire-link-interval = 30
reconnect-delay = 1
msg-id-type = 0x03
source-addr-autodetect = false
source-addr-ton = 2
source-addr-npi = 1
dest-addr-ton = 2
dest-addr-npi = 1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
mo-recode = true
log-file = "{dir}/smsbox.log"
log-level = 1

group = sendsms-user
username = mingpian
password = secret
max-messages = 10
concatenation = true

group = sms-service
keyword = default
get-url = "http://127.0.0.1:{app}/api/gateway/kannel/mo?from=%p&to=%P&text=%a&token=kannel-test-token"
catch-all = true
max-messages = 0
"""


@pytest.fixture
def kannel(gateway: _GS, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not (Path(BEARERBOX).exists() and Path(SMSBOX).exists()):
        pytest.skip("Kannel not installed (Debian package kannel: scripts/system-deps.sh)")
    ports = {
        "admin": _free_port(),
        "box": _free_port(),
        "sendsms": _free_port(),
        "app": _free_port(),
        "smpp": gateway.smpp_port,
    }
    conf = tmp_path / "kannel.conf"
    conf.write_text(CONF.format(dir=tmp_path, **ports), "utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for binary, port, log in (
            (BEARERBOX, ports["box"], tmp_path / "bearerbox.log"),
            (SMSBOX, ports["sendsms"], tmp_path / "smsbox.log"),
        ):
            with (tmp_path / f"{Path(binary).name}.out").open("wb") as out:
                procs.append(subprocess.Popen([binary, str(conf)], stdout=out, stderr=subprocess.STDOUT))
            _wait_port(port, procs[-1], log)
        yield {**ports, "dir": tmp_path}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(1)  # bearerbox lingers for seconds draining its queues: it has nothing to keep
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


async def test_through_real_kannel_flash_fails_then_sms_is_delivered(
    make_app: AppFactory, gateway: _GS, kannel: dict[str, Any]
) -> None:
    for _ in range(200):  # Kannel binds to the simulator by itself
        if gateway.binds >= 1:
            break
        time.sleep(0.02)
    gateway.set_rules([Rule("fail", channel="flash")])
    seed = seed_doc(policy={"chain": ["flash", "sms"], "timeouts": {"flash": 10, "sms": 10}})
    client = await make_app(
        seed,
        port=kannel["app"],
        delivery_kannel_url=f"http://127.0.0.1:{kannel['sendsms']}",
        delivery_kannel_username="mingpian",
        delivery_kannel_password="secret",
        delivery_kannel_token="kannel-test-token",
    )
    await call(client, "kr1", "ringing")
    d = await settle(client, "kr1:ringing", timeout=25)
    assert [(a["channel"], a["state"]) for a in d["attempts"]] == [
        ("flash", "failed"),
        ("sms", "delivered"),
    ], d
    subs = gateway.submitted(CUSTOMER[3:])
    assert subs[0]["channel"] == "flash" and subs[0]["data_coding"] == 0x18  # Kannel: mclass=0, UCS-2
    assert all(s["channel"] == "sms" for s in subs[1:]) and subs[1]["text"].startswith("【顺丰速运】")
    # Kannel numbers national digits by its smsc group's source/dest-addr-ton/npi (kannel.conf
    # above); the simulator's independent reading refused none of them (tests/conftest.py)
    assert {(s["source_ton"], s["source_npi"], s["dest_ton"], s["dest_npi"]) for s in subs} == {(2, 1, 2, 1)}
    [b] = await client.app[delivery_key].meter.balances("sf")
    assert b["used"] == d["attempts"][1]["units"]
    # a subscriber's "退订" reaches us through Kannel's sms-service (UCS-2 recoded to UTF-8)
    gateway.send_mo(CUSTOMER[3:], "13800000001", "退订")
    store = client.app[delivery_key].store
    for _ in range(500):
        if await store.opted_out("sf", CUSTOMER):
            break
        await asyncio.sleep(0.02)
    assert await store.opted_out("sf", CUSTOMER)
