"""The card-SMS platform's HTTP API (Huawei KooMessage's AIM shapes), and the gathering of
concurrent sends' questions into one call per ≤ 100 recipients.

    POST /v1/aim/templates                    our template (see cardsms_template.py) → {tpl_id}
    POST /v1/aim/mobile-capabilities/check    {tpl_id, mobiles ≤ 100} → {supported_mobiles,
                                              unsupported_mobiles}
    POST /v1/aim/resolve-tasks                {tpl_id, sms_signs, aim_code_type: individual,
                                              expiration_time, domain?, params ≤ 100
                                              [{cust_flag, dync_params, custom_url?}]}
                                              → {task_id, aim_codes[{cust_flag, aim_url,
                                              aim_code, expire_date}]}

The vendor's pages name the request fields and `aim_url`/`aim_code`/`expire_date` per recipient
but not the list they come in: `aim_codes`, one per `cust_flag`, is this adapter's reading. The
capability check names the template so the answer is "can this phone show *this* card": a
vendor that refused the template answers unsupported for its phones.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

from .cardsms_sign import authorization

BATCH = 100  # recipients per capability check and per resolve task (the platform's limit)
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


class PlatformError(Exception):
    """The platform did not answer, or answered with an error: nothing was resolved."""


@dataclass(frozen=True, slots=True)
class ParseLink:
    cust_flag: str
    aim_url: str
    aim_code: str
    expire_date: str


class Platform:
    """One account on the card-SMS platform."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, key: str, secret: str, timeout: float = 5.0
    ) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.key, self.secret = key, secret
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.calls: dict[str, int] = {"check": 0, "resolve": 0, "template": 0}  # for the benchmark

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "Authorization": authorization(self.key, self.secret, "POST", path, data),
        }
        try:
            async with self.session.post(
                self.url + path, data=data, headers=headers, timeout=self.timeout
            ) as resp:
                text = await resp.text()
                if resp.status >= 300:
                    raise PlatformError(f"{path}: HTTP {resp.status} {text[:200]}")
                answer = json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            raise PlatformError(f"{path}: {type(exc).__name__} {exc}") from None
        if not isinstance(answer, dict):
            raise PlatformError(f"{path}: answer is not an object")
        return answer

    async def submit_template(self, template: dict[str, Any]) -> str:
        self.calls["template"] += 1
        answer = await self._post("/v1/aim/templates", template)
        tpl = answer.get("tpl_id")
        if not isinstance(tpl, str) or not tpl:
            raise PlatformError(f"template submitted, no tpl_id: {answer}")
        return tpl

    async def check(self, tpl_id: str, mobiles: list[str]) -> dict[str, bool]:
        """Which of ≤ 100 numbers (E.164) can show the template."""
        self.calls["check"] += 1
        answer = await self._post(
            "/v1/aim/mobile-capabilities/check", {"tpl_id": tpl_id, "mobiles": [_plain(m) for m in mobiles]}
        )
        yes = {_plain(m) for m in answer.get("supported_mobiles") or []}
        return {m: _plain(m) in yes for m in mobiles}

    async def resolve(
        self, tpl_id: str, sign: str, days: int, domain: str, params: list[dict[str, Any]]
    ) -> dict[str, ParseLink]:
        """Parse links, one per recipient (`cust_flag`), for ≤ 100 recipients."""
        self.calls["resolve"] += 1
        body: dict[str, Any] = {
            "tpl_id": tpl_id,
            "sms_signs": [sign],
            "aim_code_type": "individual",
            "expiration_time": days,
            "params": params,
        }
        if domain:
            body["domain"] = domain
        answer = await self._post("/v1/aim/resolve-tasks", body)
        out: dict[str, ParseLink] = {}
        for item in answer.get("aim_codes") or []:
            if isinstance(item, dict) and item.get("aim_url") and item.get("cust_flag"):
                out[str(item["cust_flag"])] = ParseLink(
                    str(item["cust_flag"]),
                    str(item["aim_url"]),
                    str(item.get("aim_code", "")),
                    str(item.get("expire_date", "")),
                )
        return out


def _plain(number: str) -> str:
    """The platform takes national mobile numbers (no +86)."""
    return number[3:] if number.startswith("+86") else number.lstrip("+")


class Gather(Generic[K, T, R]):
    """Questions of concurrent sends gathered into one call per key (the template) and at most
    `limit` items: the first question opens a batch for `window` seconds, a full batch goes at
    once. `call(key, items)` answers each item (same order); its failure fails the batch."""

    def __init__(
        self, call: Callable[[K, list[T]], Awaitable[list[R]]], window: float, limit: int = BATCH
    ) -> None:
        self.call = call
        self.window = window
        self.limit = limit
        self._open: dict[K, tuple[list[T], list[asyncio.Future[R]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def ask(self, key: K, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = ([], [])
            loop.call_later(self.window, self._flush, key, batch)
        batch[0].append(item)
        batch[1].append(fut)
        if len(batch[0]) >= self.limit:
            self._flush(key, batch)
        return await fut

    def _flush(self, key: K, batch: tuple[list[T], list[asyncio.Future[R]]]) -> None:
        if self._open.get(key) is not batch:
            return  # went already (full), the timer came after
        del self._open[key]
        t = asyncio.get_running_loop().create_task(self._run(key, *batch))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _run(self, key: K, items: list[T], futs: list[asyncio.Future[R]]) -> None:
        try:
            answers = await self.call(key, items)
        except Exception as exc:
            for f in futs:
                if not f.done():
                    f.set_exception(exc)
            return
        for f, a in zip(futs, answers, strict=True):
            if not f.done():
                f.set_result(a)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
