"""The carrier's review of permanent media over real HTTP, on both chatbot stores: the MaaP
simulator holds its decision, then calls the bot's `/check` (or China Mobile's audit
notification) signed as the platform; forged and replayed callbacks are refused, a repeat
changes nothing, both time formats are read, a bad time is a 400 naming the field, and a
decision about a file we never hosted is a harmless no-op."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from chatbot.approval import NotApproved, from_report
from chatbot.auth import csp_signature_headers
from chatbot.events import from_csp_status
from chatbot.uploads import LocalFile
from mingpian.api.chatbot import runtime_key
from simulators.maap import Simulator

from .support import CSP_TOKEN, start_bot

CHATBOT = "sip:106500@botplatform.rcs.chinaunicom.cn"
T = Any


def logo(tmp: Path) -> LocalFile:
    path = tmp / "logo.png"
    Image.frombytes("RGB", (32, 32), os.urandom(32 * 32 * 3)).save(path, "PNG")
    return LocalFile(path, "image/png", lasting=True)


def check_body(url: str, result: str = "pass", when: str = "24-05-01 10:00:00") -> bytes:
    body = {"type": "media", "result": result, "time": when, "description": "", "remark": f"url:{url}"}
    return json.dumps(body).encode()


async def held(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path, store: dict[str, Any]
) -> Any:
    """A bot whose simulated carrier holds its decisions, its host on the platform, and a logo."""
    s, _ = sim
    s.carrier.review.mode = "hold"
    bot = await start_bot(aiohttp_client, sim, tmp_path, maap_approval_wait=0.1, **store)
    host = bot.client.app[runtime_key].host_for(CHATBOT)
    assert host is not None
    return s, bot, host, logo(tmp_path)


async def post_check(client: Any, raw: bytes, headers: dict[str, str] | None = None) -> Any:
    headers = headers or csp_signature_headers(CSP_TOKEN)
    return await client.post(
        f"/maap/courier/notifyInfoNotification/{CHATBOT}/check",
        data=raw,
        headers={**headers, "Content-Type": "application/json"},
    )


async def test_a_held_logo_is_refused_to_sends_until_its_check_passes(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path, store: dict[str, Any]
) -> None:
    s, bot, host, file = await held(aiohttp_client, sim, tmp_path, store)
    record = await host.host(CHATBOT, file)
    [upload] = s.carrier.uploads
    assert upload.mode == "perm" and record["review"]["state"] == "waiting"
    with pytest.raises(NotApproved) as caught:
        host.usable(record, file)
    assert caught.value.reason == "not_approved: china-unicom: logo.png waiting"

    # a forged signature and a replayed one are refused; nothing changes
    raw = check_body(record["url"])
    forged = {**csp_signature_headers("not-the-token")}
    assert (await post_check(bot.client, raw, forged)).status == 401
    signed = csp_signature_headers(CSP_TOKEN)
    assert (await post_check(bot.client, raw, signed)).status == 200
    again = await post_check(bot.client, raw, signed)
    assert again.status == 401
    approved = await host.host(CHATBOT, file)
    assert approved["review"]["state"] == "approved" and host.usable(approved, file)["url"] == record["url"]
    # the same decision again (freshly signed, ISO time) changes nothing
    iso = check_body(record["url"], when="2024-05-01T10:00:00.000+08:00")
    assert (await post_check(bot.client, iso)).status == 200
    assert await host.host(CHATBOT, file) == approved
    assert len(s.carrier.uploads) == 1


async def test_the_simulator_fails_a_logo_and_the_send_names_the_refusal(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path, store: dict[str, Any]
) -> None:
    s, _, host, file = await held(aiohttp_client, sim, tmp_path, store)
    record = await host.host(CHATBOT, file)
    await s.carrier.review.decide(record["url"], False, "图片含有违规内容")
    assert s.carrier.review.answers == [(f"url:{record['url']}", 200)]
    refused = await host.host(CHATBOT, file)
    assert refused["review"]["state"] == "refused"
    with pytest.raises(NotApproved) as caught:
        host.usable(refused, file)
    assert caught.value.state == "refused" and caught.value.description == "图片含有违规内容"
    assert len(s.carrier.uploads) == 1  # a refused file is not uploaded again


async def test_bad_time_unknown_files_and_other_kinds(
    aiohttp_client: T, sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    bot = await start_bot(aiohttp_client, sim, tmp_path)
    resp = await post_check(bot.client, check_body("http://x/files/1", when="yesterday"))
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "invalid_time" and body["problems"][0]["path"] == "time"
    assert (await post_check(bot.client, check_body("http://elsewhere/never-hosted"))).status == 200
    lenient = {
        "type": "media", "result": "pass", "time": "2024-05-01T10:00:00Z", "remark": "url:http://x/y",
        "fileInfo": {"url": "http://x/y", "until": "null"},
    }  # fmt: skip
    assert (await post_check(bot.client, json.dumps(lenient).encode())).status == 200
    info = {"type": "chatbotInformation", "result": "pass", "time": "", "remark": f"chatbotId: {CHATBOT}"}
    assert (await post_check(bot.client, json.dumps(info).encode())).status == 200
    wrong = {"type": "media", "result": "maybe", "remark": "url:x"}
    resp = await post_check(bot.client, json.dumps(wrong).encode())
    assert resp.status == 400 and (await resp.json())["problems"][0]["path"] == "result"


def test_a_status_report_refusing_the_content_reads_as_the_message_refused() -> None:
    """errorCode 3 or 6 with status failed is the carrier refusing the content; any other failure
    (or a delivered report) is not."""
    reports = from_csp_status(
        {
            "deliveryInfoList": [
                {"messageId": "m3", "status": "failed", "errorCode": 3},
                {"messageId": "m6", "status": "failed", "errorCode": "6", "errorMessage": "内容不符合要求"},
                {"messageId": "m9", "status": "failed", "errorCode": 9},
                {"messageId": "ok", "status": "delivered"},
            ]
        }
    )
    got = [from_report(r, 1.0) for r in reports]
    assert [(d.kind, d.passed, d.ref, d.description) for d in got if d is not None] == [
        ("message", False, "message:m3", "errorCode 3: content not compliant"),
        ("message", False, "message:m6", "errorCode 6: 内容不符合要求"),
    ]
    assert got[2:] == [None, None]
