"""Which links a card may carry, whatever the target: the GSMA payload schema's rules
(schemas/botsuggestion.schema.json), so a link the RCS target refuses is not sent as SMS,
USSD or flash text either."""

from __future__ import annotations

import re

# openUrl's `url` in botsuggestion.schema.json; a test keeps the two equal.
OPEN_URL = re.compile(r"^(https?|tel|sms|geo):")
# showLocation's `fallbackUrl` (and media URLs): web pages only.
WEB_URL = re.compile(r"^https?://")
OPEN_URL_SCHEMES = "https:, http:, tel:, sms:, geo:"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def link_refusal(kind: str, url: str) -> str | None:
    """Why `url` may not be the link of a `kind` suggestion (openUrl, showLocation), or None."""
    rule, allowed = (OPEN_URL, OPEN_URL_SCHEMES) if kind == "openUrl" else (WEB_URL, "https://, http://")
    if rule.match(url):
        return None
    m = _SCHEME.match(url)
    what = f"scheme {m.group(1)[:20]!r}" if m else "a link without a scheme"
    return f"{what} is not allowed ({allowed})"


__all__ = ["OPEN_URL", "WEB_URL", "link_refusal"]
