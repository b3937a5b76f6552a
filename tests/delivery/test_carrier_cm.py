"""A courier's hang-up card to a China Mobile user, end to end against the MaaP simulator: the
card goes out as China Mobile OMA XML with its picture uploaded once to the simulator's file
server and referenced by the URL it returned; the user's tap comes back as XML and is answered
in XML on the interaction endpoint."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from PIL import Image

from chatbot import cmxml_out
from mingpian.settings import PROJECT_ROOT
from simulators.maap import Simulator

from .support import OPERATOR, RCS_PHONE, AppFactory, auth, call, maap_settings, rcs_seed, sample, settle

CM_BOT = "sip:12520040000@botplatform.rcs.chinamobile.com"
USERNAME, PASSWORD = "cmcc", "cb-secret"


def cm_bots(tmp: Path) -> Path:
    """The courier flow, registered on China Mobile (its replies are sent from CM_BOT)."""
    bots = tmp / "bots"
    shutil.copytree(PROJECT_ROOT / "chatbots" / "courier", bots / "courier")
    flow = bots / "courier" / "flow.yaml"
    text = flow.read_text("utf-8").replace("sip:106500@botplatform.rcs.chinaunicom.cn", CM_BOT)
    flow.write_text(text, "utf-8")
    return bots


async def cm_app(
    make_app: AppFactory, aiohttp_server: Any, tmp_path: Path
) -> tuple[Any, Simulator, TestServer]:
    sim = Simulator(
        app_id="cm-app",
        app_key="cm-password",
        chatbot=CM_BOT,
        username=USERNAME,
        password=PASSWORD,
        capable={"tel:" + RCS_PHONE},
    )
    server = await aiohttp_server(sim.app())
    seed = rcs_seed()
    seed["enterprises"][0]["chatbot"] = CM_BOT
    client = await make_app(
        seed,
        **maap_settings(sim, server),
        maap_dialect="cm",
        chatbot_dir=cm_bots(tmp_path),
        webhook_username=USERNAME,
        webhook_password=PASSWORD,
        public_base_url="https://cdn.example.cn/mp",  # the template takes https photo URLs only
    )
    sim.webhook = str(client.make_url("/maap/courier")).rstrip("/")
    return client, sim, server


async def picture_card(client: Any) -> str:
    """Render the card's picture here (a JPEG under our /media/) and make it the card's photo."""
    data = sample("courier-hangup")
    resp = await client.post("/api/templates/courier-hangup/render?format=rcs&media=card", json=data)
    assert resp.status == 200, await resp.text()
    payload = await resp.json()
    card_json = payload["messageList"][0]["contentText"]["message"]["generalPurposeCard"]
    url = card_json["content"]["media"]["mediaUrl"]
    assert "/media/" in url
    card = {
        "id": "hangup",
        "phase": "ended",
        "template": "courier-hangup",
        "data": {**data, "photo_url": url},
    }
    resp = await client.put("/api/enterprises/sf/cards/hangup", json=card, headers=auth(OPERATOR))
    assert resp.status == 200, await resp.text()
    return url


async def test_a_hang_up_card_reaches_a_china_mobile_user_as_xml_with_its_picture_hosted(
    make_app: AppFactory, aiohttp_server: Any, tmp_path: Path
) -> None:
    client, sim, server = await cm_app(make_app, aiohttp_server, tmp_path)
    local = await picture_card(client)
    await call(client, "cm1", "ended", callee=RCS_PHONE)
    d = await settle(client, "cm1:ended")
    assert d["state"] == "delivered" and d["channel"] == "rcs", (d["reason"], d["attempts"])
    [got] = sim.received
    body = got.body
    assert body["dialect"] == "cm" and body["endpoint"] == "group"  # a card we start
    # the XML the simulator accepted, read again on its own: the dialect's shape
    again = cmxml_out.read_outbound(body["xml"].encode())
    assert again["senderAddress"] == CM_BOT and again["destinationAddress"] == ["tel:" + RCS_PHONE]
    assert again["smsSupported"] and again["smsContent"].startswith("【顺丰速运】")
    assert "<![CDATA[" in body["xml"] and "<clientCorrelator>" in body["xml"]
    card = again["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"]
    # the picture was uploaded once to the file server and the card points at its copy
    [upload] = sim.carrier.uploads
    assert upload.dialect == "cm" and set(upload.parts) == {"File"}
    hosted = card["media"]["mediaUrl"]
    assert hosted.startswith(str(server.make_url("/files/"))) and hosted != local
    served = await client.session.get(hosted)
    mine = await client.get(local[local.index("/media/") :])
    assert served.status == 200 and await served.read() == await mine.read()
    assert card["media"]["mediaFileSize"] == upload.parts["File"][2]

    # a second card with the same picture: no second upload
    await call(client, "cm2", "ended", callee=RCS_PHONE)
    assert (await settle(client, "cm2:ended"))["state"] == "delivered"
    assert len(sim.carrier.uploads) == 1 and len(sim.received) == 2
    assert (
        sim.received[1].body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"][
            "media"
        ]["mediaUrl"]
        == hosted
    )

    # the user taps "改约派送" on the card: China Mobile XML in, China Mobile XML out
    postback = next(p for p in got.postbacks if p.startswith("reschedule:"))
    assert await sim.carrier.cm_tap("tel:" + RCS_PHONE, postback) == 204
    replies = await sim.wait_for(3)
    reply = replies[2].body
    assert reply["dialect"] == "cm" and reply["inReplyTo"].startswith("c-")
    assert reply["senderAddress"] == CM_BOT
    assert reply["endpoint"] == "interaction"  # a reply
    assert sim.stats()["rejected"] == 0


async def test_a_library_photo_in_the_card_is_hosted_on_the_file_server_too(
    make_app: AppFactory, aiohttp_server: Any, tmp_path: Path
) -> None:
    client, sim, server = await cm_app(make_app, aiohttp_server, tmp_path)
    buf = io.BytesIO()
    Image.new("RGB", (640, 400), (200, 40, 160)).save(buf, "JPEG", quality=90)
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(buf.getvalue()), filename="parcel.jpg", content_type="image/jpeg")
    resp = await client.post("/api/enterprises/sf/media", data=form, headers=auth(OPERATOR))
    assert resp.status == 201, await resp.text()
    row = await resp.json()
    data = {**sample("courier-hangup"), "photo_url": row["ref"]}  # media:<id>
    card = {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": data}
    resp = await client.put("/api/enterprises/sf/cards/hangup", json=card, headers=auth(OPERATOR))
    assert resp.status == 200, await resp.text()
    await call(client, "lib1", "ended", callee=RCS_PHONE)
    d = await settle(client, "lib1:ended")
    assert d["state"] == "delivered" and d["channel"] == "rcs", (d["reason"], d["attempts"])
    [got] = sim.received
    media = got.body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"]["media"]
    [upload] = sim.carrier.uploads
    assert upload.dialect == "cm" and media["mediaUrl"].startswith(str(server.make_url("/files/")))
    served = await client.session.get(media["mediaUrl"])
    mine = await client.get(f"/api/enterprises/sf/media/{row['id']}/content", headers=auth(OPERATOR))
    assert await served.read() == await mine.read()
