"""The MaaP simulator's review of permanent media and of chatbot information, as a carrier runs it.

Every permanent upload (CT/CU `uploadMode: perm`; every China Mobile upload) and every update
of a chatbot's information (maap_info.py) waits for a decision. By default the simulator passes
it `delay` seconds after it arrived (so tests and the studio see cards go out as before);
`hold` keeps every decision until a command names it.
A decision is sent to the bot as the platform would: CT/CU `POST {webhook}/notifyInfoNotification
/{chatbotId}/check` with the `signature`/`timestamp`/`nonce` headers, China Mobile a POST to
`{webhook}/auditnotification` (or `audit_url`) with headers `tid` and `Authstatus` (0 pass /
1 reject) and the file-info, under the China Mobile credentials. A message can be failed after
the fact too: a `/check` with `type: message`, or a status report `failed` with `errorCode` 3
(content not compliant) or 6 (content not as required).

Control API:
  POST /control/review   {"mode": "auto" | "hold", "delay": s}             how decisions are made
  POST /control/review   {"decide": "pass" | "fail", "url"?: …, "chatbot"?: …, "description"?: …}
                         decide what waits: one file by its URL, a chatbot's information updates
                         by its URI, or (neither named) every file and update
  POST /control/review   {"message": <id>, "description"?: …}              fail a sent message
  POST /control/review   {"message": <id>, "errorCode": 3 | 6, …}          … as a status report
  GET  /control/review   what waits, what was decided, the callbacks' answers
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .maap import Simulator
    from .maap_info import InfoUpdate

FILE_ID = re.compile(r"/files/([0-9a-f]{32})")


@dataclass
class Pending:
    dialect: str
    chatbot: str
    urls: list[str]
    tid: str
    at: float = field(default_factory=time.time)


class Reviewer:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.mode = "auto"  # auto: pass after `delay`; hold: wait for a command
        self.delay = 0.05
        self.audit_url = ""  # China Mobile's configured notification URL ("": {webhook}/auditnotification)
        self.waiting: dict[str, Pending] = {}  # main file URL → its upload
        self.info_waiting: list[InfoUpdate] = []  # information updates, oldest first
        self.decided: dict[str, str] = {}  # file id → pass | fail
        self.answers: list[tuple[str, int]] = []  # (what was called back, the bot's HTTP status)
        self.unapproved_sends = 0  # sends naming a permanent file that did not pass (must stay 0)

    def clear(self) -> None:
        self.waiting.clear()
        self.info_waiting.clear()
        self.decided.clear()
        self.answers.clear()
        self.unapproved_sends = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/control/review", self.h_control)
        app.router.add_get("/control/review", self.h_state)

    # -- the platform's side -------------------------------------------------------------------
    def submit(self, dialect: str, chatbot: str, urls: list[str], tid: str) -> None:
        """A permanent upload: it waits; in auto mode it passes after `delay`."""
        pending = Pending(dialect, chatbot, urls, tid)
        self.waiting[urls[0]] = pending
        for url in urls:
            self.decided.pop(_fid(url), None)
        if self.mode == "auto":
            self.sim._later(self._auto(urls[0]))

    def submit_info(self, update: InfoUpdate) -> None:
        """An update of a chatbot's information: it waits; in auto mode it passes after `delay`."""
        self.info_waiting.append(update)
        if self.mode == "auto":
            self.sim._later(self._auto_info(update))

    async def _auto_info(self, update: InfoUpdate) -> None:
        await asyncio.sleep(self.delay)
        if self.mode == "auto" and update in self.info_waiting:
            await self.decide_info(update.chatbot, True)

    async def decide_info(self, chatbot: str | None, passed: bool, description: str = "") -> None:
        """Decide the updates waiting (of one chatbot; None: all): one `/check` each, naming the
        chatbot as the interface does."""
        chosen = [u for u in self.info_waiting if chatbot is None or u.chatbot == chatbot]
        for update in chosen:
            self.info_waiting.remove(update)
            if passed:
                self.sim.carrier.info.passed(update)
            text = description or ("" if passed else "信息不符合规范")
            await self.check(
                "chatbotInformation", passed, f"chatbotId: {update.chatbot}", text, update.chatbot
            )

    def sent(self, body: dict[str, Any]) -> None:
        """A send accepted: count it if it names a permanent file not passed (a real platform
        refuses it, or deletes the media)."""
        text = json.dumps(body, ensure_ascii=False)
        waiting = {_fid(u) for p in self.waiting.values() for u in p.urls}
        for fid in FILE_ID.findall(text):
            if fid in waiting or self.decided.get(fid) == "fail":
                self.unapproved_sends += 1
                return

    async def _auto(self, url: str) -> None:
        await asyncio.sleep(self.delay)
        if self.mode == "auto" and url in self.waiting:
            await self.decide(url, True)

    async def decide(self, url: str, passed: bool, description: str = "") -> None:
        p = self.waiting.pop(url, None)
        if p is None:
            return
        for u in p.urls:
            self.decided[_fid(u)] = "pass" if passed else "fail"
        if p.dialect == "cm":
            await self._audit(p, passed)
            return
        for u in p.urls:  # one /check per file (a video and its thumbnail: two)
            await self.check("media", passed, "url:" + u, description or ("" if passed else "文件不符合规则"))

    async def check(
        self, kind: str, passed: bool, remark: str, description: str = "", chatbot: str = ""
    ) -> int:
        """POST one CT/CU `/check` to the bot (about `chatbot`, by default the simulator's),
        signed; the bot's HTTP status (0: no answer)."""
        body = {
            "type": kind,
            "result": "pass" if passed else "fail",
            "time": time.strftime("%y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600)),
            "description": description,
            "remark": remark,
        }
        raw = json.dumps(body, ensure_ascii=False).encode()
        url = f"{self.sim.webhook}/notifyInfoNotification/{chatbot or self.sim.chatbot}/check"
        return await self._post(url, raw, self.sim.sign(raw), remark)

    async def report_refused(self, message_id: str, code: int, description: str = "") -> int:
        """POST a CT/CU status report saying the carrier refused a sent message's content
        (`errorCode` 3 or 6, `status: failed`), signed; the bot's HTTP status."""
        info: dict[str, Any] = {
            "messageId": message_id,
            "status": "failed",
            "errorCode": code,
            "dateTime": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
        }
        if description:
            info["errorMessage"] = description
        raw = json.dumps({"deliveryInfoList": [info]}, ensure_ascii=False).encode()
        url = f"{self.sim.webhook}/deliveryNotification/{self.sim.chatbot}/status"
        return await self._post(url, raw, self.sim.sign(raw), f"status:{message_id}")

    async def _audit(self, p: Pending, passed: bool) -> int:
        body = {
            "file-info": [
                {"type": "file", "data": {"url": p.urls[0], "until": ""}, "content-type": "", "file-size": 0}
            ]
        }
        raw = json.dumps(body).encode()
        headers = self.sim.carrier.cm_headers() | {
            "Content-Type": "application/json",
            "tid": p.tid,
            "Authstatus": "0" if passed else "1",
        }
        return await self._post(
            self.audit_url or f"{self.sim.webhook}/auditnotification", raw, headers, p.tid
        )

    async def _post(self, url: str, raw: bytes, headers: dict[str, str], what: str) -> int:
        if not self.sim.webhook and not self.audit_url:
            return 0
        try:
            async with self.sim.session.post(url, data=raw, headers=headers) as resp:
                await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError):
            status = 0
        self.answers.append((what, status))
        return status

    # -- control API ---------------------------------------------------------------------------
    async def h_control(self, request: web.Request) -> web.Response:
        d = await request.json()
        if "mode" in d:
            self.mode = "hold" if d["mode"] == "hold" else "auto"
            self.delay = float(d.get("delay", self.delay))
        if "decide" in d:
            passed, description = d["decide"] == "pass", str(d.get("description", ""))
            if not d.get("chatbot"):
                urls = [d["url"]] if d.get("url") else list(self.waiting)
                for url in urls:
                    await self.decide(url, passed, description)
            if not d.get("url"):
                await self.decide_info(d.get("chatbot") or None, passed, description)
        if "message" in d and "errorCode" in d:
            await self.report_refused(str(d["message"]), int(d["errorCode"]), str(d.get("description", "")))
        elif "message" in d:
            desc = str(d.get("description", "内容违规"))
            await self.check("message", False, f"messageId: {d['message']}", desc)
        return await self.h_state(request)

    async def h_state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "mode": self.mode,
                "delay": self.delay,
                "waiting": list(self.waiting),
                "infoWaiting": [{"chatbot": u.chatbot, "part": u.part} for u in self.info_waiting],
                "decided": self.decided,
                "answers": self.answers,
                "unapprovedSends": self.unapproved_sends,
            },
            dumps=lambda o: json.dumps(o, ensure_ascii=False),
        )


def _fid(url: str) -> str:
    m = FILE_ID.search(url)
    return m.group(1) if m else url
