"""Is a number a 5G-message terminal? Asked of the MaaP in its own dialect, with the client's
credentials.

None of the interface sources name this query for the Chinese platforms, so the paths follow
the GSMA MaaP API's `contactCapabilities` (which the CT/CU API mirrors in its own prefix), and a
deployment may set another path (`delivery_capability_path`):

- csp: `GET {url}/bot/v1/{chatbot}/contactCapabilities?userContact={contact}`; yes: 200
  (errorCode 0); no: 404, or errorCode 1/2 (no terminal / not a 5G-message terminal);
- cm: `GET {server}/messaging/v1/capabilities/{chatbotURI}/contactCapabilities?userContact=…`;
  yes: 200 with XML listing a `capability`; no: 404, or a list without one;
- gsma: `GET {server}/rcs/bot/v1/{botId}/contactCapabilities?userContact={contact}`; yes: 200
  with a non-empty JSON `capabilities`; no: 404, or an empty list.

Anything else (a timeout, a 5xx, a refused token) is "did not answer" (None): a calling card
cannot wait, and the caller does not cache it.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
from yarl import URL

from infra import jsonio

from .cmxml import _local, parse
from .errors import BadEvent
from .maap import MaapClient, TokenError

PATHS = {
    "csp": "/bot/v1/{chatbot}/contactCapabilities?userContact={contact}",
    "cm": "/messaging/v1/capabilities/{chatbot}/contactCapabilities?userContact={contact}",
    "gsma": "/rcs/bot/v1/{chatbot}/contactCapabilities?userContact={contact}",
}


def answer(dialect: str, status: int, raw: bytes) -> bool | None:
    """What an answer says: True (5G terminal), False (not), None (no answer worth keeping)."""
    if status == 404:
        return False
    if status != 200:
        return None
    if dialect == "cm":
        if not raw.strip():
            return True
        try:
            root = parse(raw)
        except BadEvent:
            return None
        return any(_local(el.tag) == "capability" for el in root.iter())
    try:
        data = jsonio.loads(raw) if raw.strip() else {}
    except (jsonio.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if dialect == "csp":
        code = data.get("errorCode", 0)
        return None if code not in (0, 1, 2, "0", "1", "2") else int(code) == 0
    caps = data.get("capabilities")
    return bool(caps) if isinstance(caps, list) else True


async def lookup(client: MaapClient, chatbot: str, contact: str, path: str, timeout: float) -> bool | None:
    """`path` empty: the dialect's own (above)."""
    template = path or PATHS[client.dialect]
    safe = "" if client.dialect == "cm" else ":@"
    try:
        headers, base, _ = await client.auth(chatbot)
        url = base + template.format(chatbot=quote(chatbot, safe=safe), contact=quote(contact))
        async with client.session.get(
            URL(url, encoded=True), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            raw = await resp.read()
    except (TokenError, TimeoutError, aiohttp.ClientError, OSError):
        return None
    return answer(client.dialect, resp.status, raw)
