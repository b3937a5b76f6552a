"""A card-SMS platform (Huawei KooMessage's AIM shapes) and the handset vendors behind it.

- Templates (`POST /v1/aim/templates`) are reviewed per vendor: by default each vendor approves
  `delay` seconds after submission; `hold` keeps every decision until a command approves or
  refuses it for one vendor (or all). Each change is called back, signed, to
  `{callback}/template-status` with `tpl_id`, `tpl_state`, `audit_state` (2 pass: more than one
  vendor enabled it; 3 fail: all refused) and `factory_info[{factory_type, state, reason}]`
  (`state` 0 reviewing, 1 approved, 2 refused).
- Capability (`POST /v1/aim/mobile-capabilities/check`, ≤ 100 numbers): a number is supported
  when its phone (`phones`: number → vendor, or none) is of a vendor that approved the template.
- Parse links (`POST /v1/aim/resolve-tasks`, ≤ 100 params, `sms_signs` equal to the template's
  signature): one per person, refused (400) for a number the capability check was not asked
  about for that template, or not supported.
- Rendering: told what reached a phone (`delivered(number, text)`: wire it to the SMSC
  simulator's `on_delivered`, or `POST /control/delivered`), it finds its parse link in the
  text and, on a phone that can draw it, calls `{callback}/send-status` with a signed
  `shortchain` callback (the render receipt). A link is drawn once (individual codes).

Requests must carry the adapter's `Authorization` (delivery/gateways/cardsms_sign.py); callbacks
carry `X-Timestamp`, `X-Nonce`, `X-Signature` under `callback_secret`.

Control API:
  POST /control/phones    {"numbers": {"13912340000": "HuaWei" | null, ...}}
  POST /control/callback  {"url": "http://…/api/cardsms/koomessage"}   where callbacks go
  POST /control/review    {"mode": "auto" | "hold", "delay": s}
  POST /control/review    {"decide": "approve" | "refuse", "vendor"?: "OPPO", "tpl_id"?: …,
                           "reason"?: "…"}
  POST /control/delivered {"number": "139…", "text": "…"}
  GET  /control/state     templates, calls per path, links, callbacks and their answers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from delivery.gateways.cardsms_sign import callback_headers, check_authorization
from delivery.gateways.cardsms_template import VENDORS

BATCH = 100
STATES = {"waiting": 0, "approved": 1, "refused": 2}


@dataclass
class Template:
    tpl_id: str
    body: dict[str, Any]
    vendors: dict[str, str]  # vendor → waiting | approved | refused
    reasons: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass
class Link:
    code: str
    url: str
    tpl_id: str
    mobile: str
    cust_flag: str
    task_id: str
    params: dict[str, Any]
    custom_url: str = ""  # where the phone goes when it cannot draw the card
    rendered: bool = False


def _plain(number: str) -> str:
    return number[3:] if number.startswith("+86") else number.lstrip("+")


class CardSmsSim:
    def __init__(
        self, *, key: str = "cs-key", secret: str = "cs-secret", callback_secret: str = "cb-secret"
    ) -> None:
        self.keys = {key: secret}
        self.callback_secret = callback_secret
        self.callback = ""  # base URL of our side's callbacks (…/template-status, …/send-status)
        self.domain = "km2g.cn"
        self.mode = "auto"
        self.delay = 0.05
        self.phones: dict[str, str] = {}  # national number → vendor (absent: no card-SMS phone)
        self.templates: dict[str, Template] = {}
        self.asked: dict[str, set[str]] = {}  # tpl_id → numbers the capability check was asked about
        self.links: dict[str, Link] = {}  # code → link
        self.calls: dict[str, int] = {"template": 0, "check": 0, "resolve": 0}
        self.refused: list[str] = []  # why requests were refused
        self.answers: list[tuple[str, int]] = []  # (callback path, our side's HTTP status)
        self.rendered: list[dict[str, Any]] = []  # render receipts sent
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/aim/templates", self.h_template)
        app.router.add_post("/v1/aim/mobile-capabilities/check", self.h_check)
        app.router.add_post("/v1/aim/resolve-tasks", self.h_resolve)
        app.router.add_post("/control/phones", self.h_phones)
        app.router.add_post("/control/review", self.h_review)
        app.router.add_post("/control/callback", self.h_callback)
        app.router.add_post("/control/delivered", self.h_delivered)
        app.router.add_get("/control/state", self.h_state)
        app.on_cleanup.append(lambda _app: self.close())
        return app

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def set_phone(self, number: str, vendor: str | None) -> None:
        if vendor is None:
            self.phones.pop(_plain(number), None)
        else:
            self.phones[_plain(number)] = vendor

    # -- the platform's API --------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await request.read()
        if not check_authorization(
            request.headers.get("Authorization", ""), self.keys, request.method, request.path, raw
        ):
            self.refused.append(f"{request.path}: bad signature")
            return web.json_response({"error_code": "AIM.0401", "error_msg": "unauthorized"}, status=401)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return self._bad(request, "body is not a JSON object")
        return body

    def _bad(self, request: web.Request, why: str) -> web.Response:
        self.refused.append(f"{request.path}: {why}")
        return web.json_response({"error_code": "AIM.0400", "error_msg": why}, status=400)

    async def h_template(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        if not body.get("card_sign_name") or not isinstance(body.get("pages"), list) or not body["pages"]:
            return self._bad(request, "card_sign_name and pages are required")
        self.calls["template"] += 1
        tpl = Template(f"tpl{secrets.token_hex(6)}", body, dict.fromkeys(VENDORS, "waiting"))
        self.templates[tpl.tpl_id] = tpl
        if self.mode == "auto":
            self._spawn(self._approve_later(tpl))
        return web.json_response({"tpl_id": tpl.tpl_id})

    async def _approve_later(self, tpl: Template) -> None:
        await asyncio.sleep(self.delay)
        await self.decide(tpl.tpl_id, "approve")

    async def h_check(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        tpl = self.templates.get(str(body.get("tpl_id", "")))
        mobiles = body.get("mobiles")
        if tpl is None:
            return self._bad(request, "unknown tpl_id")
        if not isinstance(mobiles, list) or not 0 < len(mobiles) <= BATCH:
            return self._bad(request, f"mobiles: 1 to {BATCH} numbers")
        self.calls["check"] += 1
        asked = self.asked.setdefault(tpl.tpl_id, set())
        yes, no = [], []
        for m in map(str, mobiles):
            asked.add(_plain(m))
            (yes if self._can_draw(tpl, m) else no).append(m)
        return web.json_response({"supported_mobiles": yes, "unsupported_mobiles": no})

    def _can_draw(self, tpl: Template, number: str) -> bool:
        vendor = self.phones.get(_plain(number))
        return vendor is not None and tpl.vendors.get(vendor) == "approved"

    async def h_resolve(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        tpl = self.templates.get(str(body.get("tpl_id", "")))
        items = body.get("params")
        if tpl is None:
            return self._bad(request, "unknown tpl_id")
        if body.get("sms_signs") != [tpl.body["card_sign_name"]]:
            return self._bad(request, "sms_signs must be the template's signature")
        if body.get("aim_code_type") != "individual":
            return self._bad(request, "aim_code_type: only individual codes here")
        if not isinstance(items, list) or not 0 < len(items) <= BATCH:
            return self._bad(request, f"params: 1 to {BATCH} items")
        asked = self.asked.get(tpl.tpl_id, set())
        for item in items:
            mobile = _plain(str((item or {}).get("mobile", "")))
            if mobile not in asked:
                return self._bad(request, f"{mobile}: not asked about in a capability check")
            if not self._can_draw(tpl, mobile):
                return self._bad(request, f"{mobile}: this phone cannot draw the template")
            if not item.get("cust_flag"):
                return self._bad(request, "cust_flag is required")
        self.calls["resolve"] += 1
        task, days = f"task{secrets.token_hex(6)}", int(body.get("expiration_time") or 1)
        domain = str(body.get("domain") or self.domain)
        out = []
        expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + days * 86400))
        for item in items:
            code = secrets.token_urlsafe(5)[:6]
            link = Link(code, f"https://{domain}/{code}", tpl.tpl_id, _plain(str(item["mobile"])),
                        str(item["cust_flag"]), task, dict(item.get("dync_params") or {}),
                        str(item.get("custom_url") or ""))  # fmt: skip
            self.links[code] = link
            out.append(
                {"cust_flag": link.cust_flag, "aim_url": link.url, "aim_code": code, "expire_date": expire}
            )
        return web.json_response({"task_id": task, "aim_codes": out})

    # -- review and callbacks ------------------------------------------------------------------
    async def decide(
        self, tpl_id: str | None, decision: str, vendor: str | None = None, reason: str = ""
    ) -> int:
        """Approve or refuse waiting templates (one, or all) for one vendor (or all); each changed
        template is called back. How many were changed."""
        state = "approved" if decision == "approve" else "refused"
        changed = 0
        for tpl in list(self.templates.values()):
            if tpl_id and tpl.tpl_id != tpl_id:
                continue
            names = [vendor] if vendor else list(VENDORS)
            if not any(tpl.vendors.get(v) != state for v in names):
                continue
            for v in names:
                tpl.vendors[v] = state
                tpl.reasons[v] = reason if state == "refused" else ""
            changed += 1
            await self._template_status(tpl)
        return changed

    async def _template_status(self, tpl: Template) -> None:
        approved = sum(1 for s in tpl.vendors.values() if s == "approved")
        refused = sum(1 for s in tpl.vendors.values() if s == "refused")
        body = {
            "tpl_id": tpl.tpl_id,
            "tpl_state": "1" if approved > 1 else "0",
            "audit_state": 2 if approved > 1 else (3 if refused == len(tpl.vendors) else 1),
            "factory_info": [
                {"factory_type": v, "state": STATES[s], "reason": tpl.reasons.get(v, "")}
                for v, s in tpl.vendors.items()
            ],
        }
        await self._call("template-status", body)

    async def _call(self, path: str, body: dict[str, Any]) -> int:
        if not self.callback:
            return 0
        if self._http is None:
            self._http = aiohttp.ClientSession()
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            async with self._http.post(
                f"{self.callback.rstrip('/')}/{path}",
                data=data,
                headers=callback_headers(self.callback_secret, data),
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.answers.append((path, status))
        return status

    _LINK = re.compile(r"(?:https?://)?[\w.-]+/([\w-]{4,16})")

    def delivered(self, number: str, text: str) -> None:
        """An SMS reached `number`'s phone: draw it if it carries one of our links and the phone can."""
        for code in self._LINK.findall(text):
            link = self.links.get(code)
            if link is None or link.rendered or link.mobile != _plain(number):
                continue
            tpl = self.templates.get(link.tpl_id)
            if tpl is None or not self._can_draw(tpl, number):
                continue
            link.rendered = True
            body = {
                "callback_type": "shortchain",
                "task_id": link.task_id,
                "cust_flag": link.cust_flag,
                "tpl_id": link.tpl_id,
                "aim_url": link.url,
                "aim_code": link.code,
                "status": "0",
                "describe": "parse success",
            }
            self.rendered.append(body)
            self._spawn(self._call("send-status", body))

    # -- control -------------------------------------------------------------------------------
    async def h_phones(self, request: web.Request) -> web.Response:
        body = await request.json()
        for number, vendor in (body.get("numbers") or {}).items():
            if vendor is not None and vendor not in VENDORS:
                return web.json_response({"error": f"unknown vendor {vendor!r}"}, status=400)
            self.set_phone(number, vendor)
        return web.json_response({"phones": self.phones})

    async def h_callback(self, request: web.Request) -> web.Response:
        self.callback = str((await request.json()).get("url", ""))
        return web.json_response({"callback": self.callback})

    async def h_review(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "mode" in body:
            self.mode = "hold" if body["mode"] == "hold" else "auto"
            self.delay = float(body.get("delay", self.delay))
        changed = 0
        if body.get("decide") in ("approve", "refuse"):
            vendor = body.get("vendor")
            if vendor is not None and vendor not in VENDORS:
                return web.json_response({"error": f"unknown vendor {vendor!r}"}, status=400)
            changed = await self.decide(
                body.get("tpl_id"), body["decide"], vendor, str(body.get("reason", ""))
            )
        return web.json_response({"mode": self.mode, "delay": self.delay, "changed": changed})

    async def h_delivered(self, request: web.Request) -> web.Response:
        body = await request.json()
        before = len(self.rendered)
        self.delivered(str(body.get("number", "")), str(body.get("text", "")))
        return web.json_response({"rendered": len(self.rendered) - before})

    async def h_state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "templates": {
                    t.tpl_id: {"vendors": t.vendors, "reasons": t.reasons} for t in self.templates.values()
                },
                "calls": self.calls,
                "links": len(self.links),
                "rendered": len(self.rendered),
                "refused": self.refused[-50:],
                "answers": self.answers[-50:],
            }
        )


async def _main(args: argparse.Namespace) -> None:
    sim = CardSmsSim(key=args.key, secret=args.secret, callback_secret=args.callback_secret)
    sim.callback = args.callback
    runner = web.AppRunner(sim.app())
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"card-SMS platform simulator on http://{args.host}:{args.port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8776)
    p.add_argument("--key", default="cs-key")
    p.add_argument("--secret", default="cs-secret")
    p.add_argument("--callback-secret", default="cb-secret")
    p.add_argument("--callback", default="http://127.0.0.1:8000/api/cardsms/koomessage")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
