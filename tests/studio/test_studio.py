"""Studio routes over HTTP: pages, assets, security headers, capabilities, and the SSE stream."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from chatbot.auth import hmac_headers
from mingpian.api.chatbot import runtime_key
from mingpian.app import create_app
from mingpian.settings import Settings
from mingpian.studio.preview_bot import PREVIEW_CHATBOT, preview_bot_key
from mingpian.studio.security import CSP
from simulators.maap import Fault
from tests.support.client import ClientFactory
from tests.support.templates import MANIFEST, write_template

Client = TestClient[Any, web.Application]


async def scratch_client(
    aiohttp_client: ClientFactory, settings: Settings, root: Path, **changes: Any
) -> Client:
    return await aiohttp_client(create_app(settings.with_(template_dir=root, **changes)))


def assert_studio_headers(resp: Any) -> None:
    csp = resp.headers["Content-Security-Policy"]
    assert csp == CSP
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def read_event(resp: Any, timeout: float = 3.0) -> tuple[str, dict[str, Any]]:
    """The next SSE event (skipping retry lines and keepalive comments)."""
    while True:
        block = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout)
        name, data = "message", ""
        for line in block.decode().splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        if data:
            return name, json.loads(data)


async def test_gallery_lists_every_template_with_phase_and_headers(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert_studio_headers(resp)
    html = await resp.text()
    assert '<html lang="zh-CN">' in html
    for name in ("courier-hangup", "bank-identity", "ad-carousel", "staff-card"):
        assert f'href="/t/{name}"' in html and f'data-thumb="{name}"' in html
    assert "快递挂机名片" in html and "挂机后" in html and "来电前" in html
    # No inline script anywhere: the CSP forbids it, so the page must not need it.
    assert "<script>" not in html and "onload=" not in html
    assert '<script type="module" src="/static/gallery.js?v=' in html


async def test_template_page_shell(client: Client) -> None:
    resp = await client.get("/t/courier-hangup")
    assert resp.status == 200
    assert_studio_headers(resp)
    html = await resp.text()
    assert 'data-template="courier-hangup"' in html and "<title>名片工作台 · 快递挂机名片</title>" in html
    for element_id in ("data-form", "phones", "problems", "raw", "profile", "share", "status"):
        assert f'id="{element_id}"' in html
    assert 'aria-live="polite"' in html


async def test_unknown_template_page_is_json_404(client: Client) -> None:
    for path in ("/t/nope", "/t/..%2F..%2Fetc", "/t/%3Cscript%3E"):
        resp = await client.get(path)
        assert resp.status == 404, path
        body = await resp.json()
        assert body["error"] in ("not_found", "template_not_found")


async def test_markup_in_template_metadata_is_escaped(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "tpl"
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    manifest = (
        MANIFEST.format(name="evil")
        .replace("测试模板", json.dumps(evil))
        .replace("测试用模板", json.dumps(evil))
    )
    write_template(root, "evil", "card:\n  title: hi\n", manifest=manifest)
    client = await scratch_client(aiohttp_client, settings, root)
    for path in ("/", "/t/evil"):
        html = await (await client.get(path)).text()
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_broken_template_still_listed_and_page_opens(
    aiohttp_client: ClientFactory, settings: Settings, scratch_templates: Path
) -> None:
    (scratch_templates / "staff-card" / "card.yaml").write_text("card: [unclosed\n", "utf-8")
    client = await scratch_client(aiohttp_client, settings, scratch_templates)
    html = await (await client.get("/")).text()
    assert 'class="tile broken" data-name="staff-card"' in html and "card.yaml" in html
    resp = await client.get("/t/staff-card")
    assert resp.status == 200  # the page opens and shows the template's errors from the API


async def test_static_assets_types_and_traversal(client: Client) -> None:
    for name, ctype in (
        ("template.js", "text/javascript"),
        ("studio.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
        ("fonts.css", "text/css"),
    ):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200, name
        assert resp.content_type == ctype, name
        assert_studio_headers(resp)
    for bad in (
        "/static/../app.py",
        "/static/%2e%2e/pages.py",
        "/static/pages.py",
        "/static/fonts/../../pages.py",
        "/static/sub/dir/x.js",
        "/static/nope.js",
        "/static/.hidden.js",
    ):
        resp = await client.get(bad)
        assert resp.status == 404, bad
        assert resp.content_type == "application/json", bad


async def test_project_fonts_are_served_and_declared(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    assets = tmp_path / "assets"
    (assets / "fonts").mkdir(parents=True)
    (assets / "fonts" / "MingpianSans-Regular.ttf").write_bytes(b"\0\1\0\0fake-font")
    (assets / "fonts" / "notes.txt").write_text("not a font", "utf-8")
    client = await aiohttp_client(create_app(settings.with_(assets_dir=assets)))
    css = await (await client.get("/static/fonts.css")).text()
    assert 'font-family: "Mingpian Sans"' in css
    assert 'url("/static/fonts/MingpianSans-Regular.ttf") format("truetype")' in css
    assert "notes.txt" not in css
    resp = await client.get("/static/fonts/MingpianSans-Regular.ttf")
    assert resp.status == 200 and resp.content_type == "font/ttf"
    assert await resp.read() == b"\0\1\0\0fake-font"
    assert (await client.get("/static/fonts/notes.txt")).status == 404
    caps = await (await client.get("/api/capabilities")).json()
    assert caps["fonts"] == ["MingpianSans-Regular.ttf"]


async def test_capabilities_lists_registered_formats(client: Client) -> None:
    resp = await client.get("/api/capabilities")
    assert resp.status == 200
    assert_studio_headers(resp)
    caps = await resp.json()
    assert "rcs" in caps["formats"] and caps["liveReload"] is True
    from mingpian.api.templates import formats_key

    assert caps["formats"] == sorted(client.app[formats_key])
    assert caps["chatbot"] is True and caps["bots"] == ["bank", "courier", "hotline", "shop", "show", "staff"]
    assert caps["chatEndpoint"] == "/api/studio/chat"
    assert caps["fonts"] and all(f.endswith((".otf", ".ttf", ".woff2", ".woff")) for f in caps["fonts"])


def _card_titles(body: dict[str, Any]) -> list[str]:
    return [
        m["contentText"]["message"]["generalPurposeCard"]["content"]["title"]
        for m in body["messageList"]
        if isinstance(m["contentText"], dict)
    ]


async def test_preview_chat_taps_and_numbered_replies(client: Client) -> None:
    chat = "/api/studio/chat"
    resp = await client.post(
        chat, json={"session": "rcs-0123456789", "postback": "track:SF1234567890123", "text": "查询物流"}
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["bot"] == "courier" and body["node"] == "tracking"
    assert _card_titles(body) == ["运单 SF1234567890123：派送中"]
    # the notification the MaaP simulator built, as a CT/CU platform would POST it
    inbound = body["inbound"]
    assert inbound["messageList"][0]["contentType"] == "application/vnd.gsma.botsuggestion.response.v1.0+json"
    assert inbound["senderAddress"].startswith("tel:+86199")
    # what the simulated MaaP received from the bot's outbox: the CSP send body (with the fields
    # the MaaP client adds), and the SMS fallback for legacy phones
    reply = body["replies"][0]
    assert reply["destinationAddress"] == [inbound["senderAddress"]]
    assert reply["inReplyTo"] == inbound["contributionId"] and reply["storeSupported"] is True
    [row] = body["outbox"]
    assert row["messageId"] == reply["messageId"] and row["state"] == "sent" and row["attempts"] == 1
    assert row["conversation"] == f"courier\x1f{inbound['senderAddress']}"
    assert body["sms"][0].startswith("【顺丰速运】运单 SF1234567890123")
    assert body["replyMap"]["2"] == "reschedule:SF1234567890123"
    # a legacy user's "2" is resolved by the bot through the reply map of its last SMS
    body = await (await client.post(chat, json={"session": "rcs-0123456789", "text": "回复2"})).json()
    assert body["node"] == "reschedule" and _card_titles(body) == ["请选择新的派送时间"]
    body = await (await client.post(chat, json={"session": "rcs-0123456789", "text": "１"})).json()
    assert _card_titles(body) == ["改约成功"] and "今天 18:00-21:00" in body["sms"][0]
    # sessions are separate conversations: a bare "1" in a new one answers no menu
    resp = await client.post(chat, json={"session": "sms-0123456789", "text": "1"})
    assert resp.status == 404 and (await resp.json())["error"] == "no_bot"


async def test_preview_chat_rejects_bad_requests(client: Client) -> None:
    chat = "/api/studio/chat"
    cases = [
        ({"postback": "track:SF1234567890123"}, 400, "$.session"),
        ({"session": "short", "postback": "x"}, 400, "$.session"),
        ({"session": "<script>alert(1)</script>", "postback": "x"}, 400, "$.session"),
        ({"session": "abcdefgh12"}, 400, "$"),
        ({"session": "abcdefgh12", "text": "   "}, 400, "$"),
        ({"session": "abcdefgh12", "postback": 7}, 400, "$.postback"),
        ({"session": "abcdefgh12", "text": "字" * 1001}, 400, "$.text"),
        ({"session": "abcdefgh12", "postback": "nothing:answers"}, 404, "$.postback"),
        ({"session": "abcdefgh12", "postback": "x", "bot": "nope"}, 404, "$.postback"),
    ]
    for body, status, path in cases:
        resp = await client.post(chat, json=body)
        assert resp.status == status, body
        err = await resp.json()
        assert err["problems"][0]["path"] == path, body
    assert (await client.post(chat, data=b"[1]", headers={"Content-Type": "application/json"})).status == 400
    assert (await client.post(chat, data=b"{", headers={"Content-Type": "application/json"})).status == 400
    assert (await client.post(chat, data=b"{}", headers={"Content-Type": "text/plain"})).status == 415


async def test_preview_chat_without_a_chatbot(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    empty = tmp_path / "no-bots"
    empty.mkdir()
    client = await aiohttp_client(create_app(settings.with_(chatbot_dir=empty)))
    caps = await (await client.get("/api/capabilities")).json()
    assert caps["chatbot"] is False and caps["chatEndpoint"] is None and caps["bots"] == []
    resp = await client.post("/api/studio/chat", json={"session": "abcdefgh12", "postback": "x"})
    assert resp.status == 404 and (await resp.json())["error"] == "chatbot_disabled"


async def test_preview_chat_runs_the_real_loop_and_never_the_real_maap(
    aiohttp_client: ClientFactory, aiohttp_raw_server: Any, settings: Settings
) -> None:
    """The configured MaaP is a local listener: the preview must never call it, while the real
    webhook of the same server does (so the listener is proven to be the one in use)."""
    hits: list[str] = []

    async def real_maap(request: web.BaseRequest) -> web.Response:
        hits.append(f"{request.method} {request.path}")
        return web.json_response({"errorCode": 40001, "errorMessage": "not for tests"})

    listener = await aiohttp_raw_server(real_maap)
    secret = "real-webhook-secret"
    client = await aiohttp_client(
        create_app(
            settings.with_(
                maap_url=str(listener.make_url("")).rstrip("/"),
                maap_app_id="real-app",
                maap_app_key="real-key",
                webhook_hmac_secret=secret,
            )
        )
    )
    preview = client.app[preview_bot_key]
    real = client.app[runtime_key]
    assert preview.store is not real.store and preview.sim.app_key != "real-key"
    chat = "/api/studio/chat"
    first = await (
        await client.post(chat, json={"session": "loop-0123456789", "postback": "track:SF1234567890123"})
    ).json()
    second = await (await client.post(chat, json={"session": "loop-0123456789", "text": "2"})).json()
    assert second["node"] == "reschedule"
    user = first["inbound"]["senderAddress"]
    # webhook → engine: the delivery's dedupe record and the committed state are in the preview store
    state = await preview.state("courier", user)
    assert state is not None and state.node == "reschedule" and state.turns == 2
    assert (
        await preview.store.load(f"courier\x1f{user}", f"courier\x1f{first['inbound']['messageId']}")
    ).seen
    # store → outbox worker → MaaP client → simulator: every reply row was sent, once
    ids = [r["messageId"] for r in first["replies"] + second["replies"]]
    rows = [await preview.store.message(mid) for mid in ids]
    assert len(ids) == 2 and all(r is not None and r["state"] == "sent" for r in rows)
    assert preview.relayed == 2 and preview.worker.delivered == 2
    assert preview.sim.token_requests == 1 and preview.sim.rejected == 0
    assert preview.sim.received == []  # handed to the studio and dropped: memory stays bounded
    # a redelivery of the same notification is recognised by the engine's dedupe: no new reply
    assert await preview.sim.deliver(first["inbound"], webhook=f"{preview.webhook}/courier") == 200
    assert await preview.store.pending() == 0 and preview.worker.delivered == 2
    # nothing of the preview reached the real store or the real MaaP
    assert (await real.store.load(f"courier\x1f{user}", "")).state is None
    assert hits == []
    # ... while a message to the server's real webhook does go to the configured MaaP
    raw = json.dumps(
        preview.sim.message("tel:+8613800138000", postback="track:SF1234567890123"), ensure_ascii=False
    ).encode()
    resp = await client.post(
        f"/maap/courier/messageNotification/{PREVIEW_CHATBOT}/messages",
        data=raw,
        headers={"Content-Type": "application/json", **hmac_headers(secret, raw)},
    )
    assert resp.status == 200
    for _ in range(200):
        if hits:
            break
        await asyncio.sleep(0.01)
    assert hits and hits[0].startswith("POST /bot/v1/")
    await client.close()
    assert not any(settings.data_dir.glob("studio-preview-*"))  # the preview store is removed


async def test_preview_chat_says_when_the_simulated_maap_refuses(client: Client) -> None:
    preview = client.app[preview_bot_key]
    preview.sim.fault = Fault(mode="errorcode", error_code=20002)  # bad parameters: not retried
    resp = await client.post(
        "/api/studio/chat", json={"session": "fail-0123456789", "postback": "track:SF1234567890123"}
    )
    assert resp.status == 502 and resp.content_type == "application/json"
    err = await resp.json()
    assert err["error"] == "preview_failed" and "failed" in err["message"] and "20002" in err["message"]
    preview.sim.fault = Fault()
    body = await (
        await client.post("/api/studio/chat", json={"session": "fail-0123456789", "text": "2"})
    ).json()
    assert body["node"] == "reschedule"  # the turn itself was committed; the next tap goes on from it


async def test_events_ready_then_changed_on_file_edit(
    aiohttp_client: ClientFactory, settings: Settings, scratch_templates: Path
) -> None:
    client = await scratch_client(aiohttp_client, settings, scratch_templates, reload_interval=0.25)
    resp = await client.get("/api/templates/courier-hangup/events")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert_studio_headers(resp)
    name, data = await read_event(resp)
    assert name == "ready" and data["ok"] is True
    first = data["templateVersion"]
    card = scratch_templates / "courier-hangup" / "card.yaml"
    card.write_text(card.read_text("utf-8").replace("您的快递", "您的包裹"), "utf-8")
    name, data = await read_event(resp)
    assert name == "changed" and data["ok"] is True and data["templateVersion"] != first
    # Right after the event, the API serves the new template (not the store's cached build).
    body = await (
        await client.post(
            "/api/templates/courier-hangup/render",
            json=(await (await client.get("/api/templates/courier-hangup")).json())["sampleData"],
        )
    ).json()
    assert body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"][
        "title"
    ].startswith("您的包裹")
    # A broken save is reported as such, with file and line, on the same stream.
    card.write_text('card:\n  title: "{{ unclosed"\n', "utf-8")
    name, data = await read_event(resp)
    assert name == "changed" and data["ok"] is False
    assert any(p.get("file", "").endswith("card.yaml") for p in data["error"]["problems"])
    shutil.rmtree(scratch_templates / "courier-hangup")
    name, data = await read_event(resp)
    assert name == "gone" and data == {"template": "courier-hangup"}
    assert await asyncio.wait_for(resp.content.read(), 2) == b""  # the stream ended
    assert not client.app[_streams()].open


def _streams() -> Any:
    from mingpian.studio.events import streams_key

    return streams_key


async def test_events_unknown_template_is_404_json(client: Client) -> None:
    resp = await client.get("/api/templates/nope/events")
    assert resp.status == 404 and resp.content_type == "application/json"


async def test_events_streams_end_on_shutdown_and_disconnect(client: Client) -> None:
    streams = client.app[_streams()]
    a = await client.get("/api/templates/courier-hangup/events")
    b = await client.get("/api/templates/bank-identity/events")
    assert (await read_event(a))[0] == "ready" and (await read_event(b))[0] == "ready"
    assert len(streams.open) == 2
    b.close()  # the browser tab goes away: the server notices within a poll
    for _ in range(50):
        if len(streams.open) == 1:
            break
        await asyncio.sleep(0.05)
    assert len(streams.open) == 1
    await client.app.shutdown()  # what AppRunner.cleanup does first on SIGTERM
    assert await asyncio.wait_for(a.content.read(), 2) == b""
    assert not streams.open


def test_static_scripts_never_parse_data_as_html() -> None:
    """The DOM is built with textContent and DOM APIs only: no HTML sinks in the page code."""
    from mingpian.studio.assets import STATIC_DIR

    sinks = (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "srcdoc",
        "javascript:",
    )
    scripts = sorted(STATIC_DIR.glob("*.js"))
    assert len(scripts) >= 8
    for js in scripts:
        text = js.read_text("utf-8")
        for sink in sinks:
            assert sink not in text, f"{js.name} uses {sink}"


async def test_studio_responses_match_the_openapi_document(client: Client) -> None:
    import jsonschema

    doc = await (await client.get("/api/openapi.json")).json()

    async def check(method: str, url: str, path: str, **kw: Any) -> None:
        resp = await client.request(method, url, **kw)
        op = doc["paths"][path][method.lower()]
        assert str(resp.status) in op["responses"], f"{method} {url}: {resp.status} undocumented"
        content = op["responses"][str(resp.status)]["content"]
        assert resp.content_type in content, f"{method} {url}: {resp.content_type} undocumented"
        if resp.content_type == "application/json":
            schema = {**content[resp.content_type]["schema"], "components": doc["components"]}
            jsonschema.validate(await resp.json(), schema)
        else:
            await resp.read()

    await check("GET", "/", "/")
    await check("GET", "/t/courier-hangup", "/t/{name}")
    await check("GET", "/t/nope", "/t/{name}")
    await check("GET", "/static/template.js", "/static/{path}")
    await check("GET", "/static/nope.js", "/static/{path}")
    await check("GET", "/api/capabilities", "/api/capabilities")
    await check("GET", "/api/templates/nope/events", "/api/templates/{name}/events")
    chat = "/api/studio/chat"
    await check("POST", chat, chat, json={"session": "abcdefgh12", "postback": "track:SF1234567890123"})
    await check("POST", chat, chat, json={"session": "x"})
    await check("POST", chat, chat, json={"session": "abcdefgh12", "postback": "nothing"})
    await check("POST", chat, chat, data=b"{}", headers={"Content-Type": "text/plain"})
