"""Two MaaP accounts in one server: a China Unicom chatbot on the default account (CT/CU JSON)
and a China Mobile one on an account of `maap_accounts` (OMA XML), each on its own platform
(two simulators); each user's tap is answered on its own platform in its own dialect."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from mingpian.app import create_app
from mingpian.settings import PROJECT_ROOT, Settings
from simulators.maap import Simulator

from .support import OPERATOR, PASSWORD, USER, USERNAME, WAYBILL, chatbot_settings

CM_BOT = "sip:12520040000@botplatform.rcs.chinamobile.com"
CM_USER = "tel:+8613900000009"


def two_bots(tmp: Path) -> Path:
    bots = tmp / "bots"
    shutil.copytree(PROJECT_ROOT / "chatbots" / "courier", bots / "courier")
    shutil.copytree(PROJECT_ROOT / "chatbots" / "courier", bots / "courier-cm")
    flow = bots / "courier-cm" / "flow.yaml"
    flow.write_text(
        flow.read_text("utf-8").replace("sip:106500@botplatform.rcs.chinaunicom.cn", CM_BOT), "utf-8"
    )
    return bots


async def test_each_chatbot_answers_on_its_own_platform_in_its_own_dialect(
    aiohttp_client: Any, aiohttp_server: Any, sim: tuple[Simulator, TestServer], tmp_path: Path
) -> None:
    cu, cu_server = sim
    cm = Simulator(  # reports: China Mobile status reports (DeliveryInfoNotification XML) come back
        app_id="cm-app",
        app_key="cm-password",
        chatbot=CM_BOT,
        username=USERNAME,
        password=PASSWORD,
        reports=True,
    )
    cm_server = await aiohttp_server(cm.app())
    accounts = [
        {
            "chatbots": [CM_BOT],
            "url": str(cm_server.make_url("")).rstrip("/"),
            "dialect": "cm",
            "app_id": cm.app_id,
            "app_key": cm.app_key,
        }
    ]
    settings = chatbot_settings(
        tmp_path,
        str(cu_server.make_url("")).rstrip("/"),
        chatbot_dir=two_bots(tmp_path),
        maap_accounts=json.dumps(accounts),
    )
    client = await aiohttp_client(create_app(settings))
    cu.webhook = str(client.make_url("/maap/courier")).rstrip("/")
    cm.webhook = str(client.make_url("/maap/courier-cm")).rstrip("/")
    try:
        assert await cu.tap(USER, f"track:{WAYBILL}") == 200
        assert await cm.carrier.cm_tap(CM_USER, f"track:{WAYBILL}") == 204
        [cu_reply] = await cu.wait_for(1)
        [cm_reply] = await cm.wait_for(1)
        for _ in range(100):  # the platform's delivery report, in XML, reaches the message
            resp = await client.get(f"/api/chatbot/messages/{cm_reply.message_id}", headers=OPERATOR)
            if (await resp.json()).get("delivery") == "delivered":
                break
            await asyncio.sleep(0.02)
        assert (await resp.json())["delivery"] == "delivered", cm.carrier.reported
    finally:
        await cm._close()
    assert "dialect" not in cu_reply.body and cu_reply.body["senderAddress"] != CM_BOT
    assert cm_reply.body["dialect"] == "cm" and cm_reply.body["endpoint"] == "interaction"
    assert cm_reply.body["senderAddress"] == CM_BOT and cm_reply.user == CM_USER
    assert WAYBILL in cu_reply.text and WAYBILL in cm_reply.text
    assert cu.received[0].user == USER and len(cu.received) == len(cm.received) == 1
    assert cu.stats()["rejected"] == cm.stats()["rejected"] == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "not JSON"),
        ('[{"chatbots": ["a"], "url": "http://x", "app_id": "i"}]', "[0].app_key is required"),
        ('[{"chatbots": ["a"], "url": "http://x", "app_id": "i", "app_key": "k", "dialect": "cmcc"}]',
         "[0].dialect must be csp, cm or gsma"),
        ('[{"chatbots": ["a"], "url": "http://x", "app_id": "i", "app_key": "k", "colour": "red"}]',
         "[0]: unknown key 'colour'"),
    ],
)  # fmt: skip
def test_bad_maap_accounts_stop_with_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(SystemExit) as caught:
        Settings.from_env({"MINGPIAN_MAAP_ACCOUNTS": value})
    assert str(caught.value).startswith("MINGPIAN_MAAP_ACCOUNTS='********': ") and message in str(
        caught.value
    )
