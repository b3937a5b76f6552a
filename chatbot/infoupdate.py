"""Submitting the chatbot's information to its platform (CT/CU): `POST {url}/bot/v1/{chatbotId}
/update/chatBotInfo/optionals` or `…/update/chatBotInfo/menu`, with the client's token; the
answer `{errorCode, errorMessage}` is read with the one table of answers (codes.py). A token the
platform refuses is refreshed and the request sent once more, as sends do. China Mobile and the
GSMA MaaP take no such update through this interface: `UPDATE_DIALECTS` says who does.

`update` records the update waiting before it asks the platform (so two operators cannot submit
two at once) and withdraws it when the platform does not take it; `decided` applies the
carrier's `/check` to the record (botinfo.py has the record's states)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from . import botinfo
from .approval import Decision
from .errors import InfoNotTaken, InfoPending, InfoUnsupported
from .maap import MaapClient, SendResult, TokenError, csp_outcome
from .store import Store

log = logging.getLogger("mingpian.chatbot.info")
UPDATE_DIALECTS = ("csp",)


async def submit(client: MaapClient, chatbot: str, part: str, body: dict[str, Any]) -> SendResult:
    """One update request (`part`: optionals | menu); ok only when the platform took it."""
    stale: str | None = None
    result = SendResult("fail", "not sent")
    for _ in range(2):
        try:
            headers, base, token = await client.auth(chatbot, stale)
            url = f"{base}/bot/v1/{quote(chatbot, safe=':@')}/update/chatBotInfo/{part}"
            async with client.session.post(
                URL(url, encoded=True), json=body, headers=headers, timeout=client.timeout
            ) as resp:
                raw = await resp.read()
                result, token_bad = csp_outcome(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw
                )
        except TokenError as exc:
            return SendResult("retry", str(exc))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return SendResult("retry", f"{type(exc).__name__}: {exc}"[:300])
        if not token_bad:
            break
        stale = token
    return result


def platform_of(client: MaapClient) -> str:
    """The platform account a record belongs to (as hosted media name theirs)."""
    return f"{client.dialect}|{client.server}|{client.app_id}"


async def update(
    store: Store, client: MaapClient | None, chatbot: str, info: dict[str, Any], now: float
) -> dict[str, Any]:
    """Submit `info` (valid against botinfo.SCHEMA) for `chatbot` and record it waiting; the
    record's view. Raises InfoUnsupported, InfoPending, or InfoNotTaken (nothing recorded)."""
    if client is None or client.dialect not in UPDATE_DIALECTS:
        where = "no MaaP account sends for it" if client is None else f"its platform speaks {client.dialect}"
        raise InfoUnsupported(f"{chatbot}: {where}; only CT/CU platforms take information updates")
    platform = platform_of(client)
    before = await store.bot_info(platform, chatbot)
    record, claimed = await store.update_bot_info(platform, chatbot, lambda r: botinfo.claim(r, info, now))
    if not claimed or record is None:
        since = botinfo.waiting_since(record)
        raise InfoPending(f"{chatbot}: an update waits for the carrier's decision since {since}")
    mine = record["pending"]["id"]
    for part, body in botinfo.requests(info):
        result = await submit(client, chatbot, part, body)
        if result.outcome != "ok":
            await store.update_bot_info(platform, chatbot, lambda r: botinfo.withdraw(r, mine, before))
            raise InfoNotTaken(f"the platform did not take the {part} update: {result.detail}"[:500])
    log.info(
        "chatbot information of %s submitted (%s)", chatbot, ", ".join(p for p, _ in botinfo.requests(info))
    )
    return botinfo.view(record)


async def decided(store: Store, client: MaapClient | None, d: Decision) -> None:
    """Apply a `/check` about chatbot information; about a chatbot we submitted nothing for, or
    with nothing waiting (a repeat), it is logged and changes nothing."""
    chatbot = d.ref.removeprefix("chatbot:")
    if client is None:
        log.info("review of the information of %s, which no account sends for: ignored", chatbot[:200])
        return
    _, changed = await store.update_bot_info(
        platform_of(client), chatbot, lambda r: botinfo.apply(r, d.passed, d.at, d.description)
    )
    verdict = "pass" if d.passed else "fail"
    if changed:
        log.info("review of the information of %s: %s %s", chatbot, verdict, d.description)
    else:
        log.info("review of the information of %s (%s): nothing waits, ignored", chatbot[:200], verdict)
