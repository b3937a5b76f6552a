"""The MaaP simulator's chatbot information (CT/CU): the optional information and the persistent
menu a chatbot submits, reviewed like permanent media (review.py: passed promptly by default,
or held for `POST /control/review`), and what the platform shows once an update passed.

  POST /bot/v1/{chatbotId}/update/chatBotInfo/optionals   {serviceDescription, callBackNumber, …}
  POST /bot/v1/{chatbotId}/update/chatBotInfo/menu        {"menu": {"entries": […]}}
  GET  /bot/v1/{chatbotId}/find/chatBotInfo               the information that passed, menu included

Each answers `{errorCode, errorMessage}`: 40014 for a token it did not issue, 20002 for a body
outside the interface's fields or limits (at most 3 menu entries, 5 in a submenu, a description
of at most 500 characters), 0 when the update was taken for review.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .maap import Simulator

# The interface's optional fields and their longest values (CT/CU V1.0.4).
OPTIONAL_FIELDS = {
    "serviceDescription": 500,
    "category": 0,
    "callBackNumber": 21,
    "provider": 100,
    "longitude": 0,
    "latitude": 0,
    "themeColour": 20,
    "serviceWebsite": 150,
    "emailAddress": 50,
    "backgroundImage": 150,
    "address": 200,
    "cssStyle": 150,
    "autograph": 50,
}


@dataclass
class InfoUpdate:
    chatbot: str
    part: str  # optionals | menu
    body: dict[str, Any]


class InfoDesk:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.updates: list[InfoUpdate] = []  # every update taken, in order
        self.shown: dict[str, dict[str, Any]] = {}  # chatbot → the information that passed

    def clear(self) -> None:
        self.updates.clear()
        self.shown.clear()

    def routes(self, app: web.Application, prefix: str = "") -> None:
        app.router.add_post(prefix + "/bot/v1/{chatbot}/update/chatBotInfo/{part}", self.h_update)
        app.router.add_get(prefix + "/bot/v1/{chatbot}/find/chatBotInfo", self.h_find)

    def passed(self, update: InfoUpdate) -> None:
        """The carrier passed it: the platform shows it from now on."""
        self.shown.setdefault(update.chatbot, {}).update(update.body)

    def _refuse(self, code: int, message: str) -> web.Response:
        self.sim.rejected += 1
        return web.json_response({"errorCode": code, "errorMessage": message})

    async def h_update(self, request: web.Request) -> web.Response:
        if not self.sim.carrier.csp_token_ok(request):
            return self._refuse(40014, "invalid access token")
        part = request.match_info["part"]
        if part not in ("optionals", "menu"):
            return web.json_response({"errorCode": 20003, "errorMessage": "unknown update"}, status=404)
        faulted = await self.sim._faulted("info")
        if faulted is not None:
            return faulted
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._refuse(47001, "body is not JSON")
        why = optionals_problem(body) if part == "optionals" else menu_problem(body)
        if why:
            return self._refuse(20002, why)
        update = InfoUpdate(request.match_info["chatbot"], part, body)
        self.updates.append(update)
        self.sim.carrier.review.submit_info(update)
        return web.json_response({"errorCode": 0, "errorMessage": "success"})

    async def h_find(self, request: web.Request) -> web.Response:
        if not self.sim.carrier.csp_token_ok(request):
            return self._refuse(40014, "invalid access token")
        shown = self.shown.get(request.match_info["chatbot"], {})
        return web.json_response(
            {"menu": {}, **shown, "errorCode": 0}, dumps=lambda o: json.dumps(o, ensure_ascii=False)
        )


def optionals_problem(body: Any) -> str:
    """Why an optionals update is outside the interface ("" : it is not)."""
    if not isinstance(body, dict) or not body:
        return "the body must be an object naming at least one optional field"
    for name, value in body.items():
        if name not in OPTIONAL_FIELDS:
            return f"unknown field {name!r}"
        limit = OPTIONAL_FIELDS[name]
        if limit and (not isinstance(value, str) or len(value) > limit):
            return f"{name} must be text of at most {limit} characters"
    return ""


def menu_problem(body: Any) -> str:
    """Why a menu update is outside the interface ("" : it is not)."""
    menu = body.get("menu") if isinstance(body, dict) else None
    entries = menu.get("entries") if isinstance(menu, dict) else None
    if not isinstance(entries, list) or not 1 <= len(entries) <= 3:
        return "menu.entries must list 1 to 3 entries"
    for entry in entries:
        sub = entry.get("menu") if isinstance(entry, dict) else None
        if sub is None:
            if not isinstance(entry, dict) or not ({"reply", "action"} & set(entry)):
                return "each entry is a reply, an action or a submenu"
            continue
        items = sub.get("entries") if isinstance(sub, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= 5:
            return "a submenu lists 1 to 5 entries"
        if any(not isinstance(i, dict) or "menu" in i for i in items):
            return "a submenu's entries are replies or actions (two levels at most)"
    return ""
