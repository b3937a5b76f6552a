"""A card's data checked against its template when the card is written, not when a call needs it.

At call time compose.py merges the card's data with the line's staff member's data and the
call fields, so a field those supply may be missing from the card itself; anything the card
does give must already fit the template's schema. Checked on create and update, so a card
that every call would fail with "data does not match" is refused with its JSON paths instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from renderer import DataInvalid
from renderer.templates import CardTemplate

_FIRST = re.compile(r"^\$\.([^.\[]+)")


def data_problems(
    template: CardTemplate, card: dict[str, Any], supplied: Iterable[str]
) -> list[dict[str, str]]:
    """Problems of the card's data as `{"path": "$.data.…", "message", "code"}` (code: the JSON
    Schema keyword broken); a required field that `supplied` (staff data keys) or the card's
    call fields fill at call time is not one."""
    later = set(supplied) | set(card.get("call_fields") or {})
    try:
        template.validate_data(card.get("data") or {})
    except DataInvalid as exc:
        out = []
        for p in exc.problems:
            m = _FIRST.match(p.path)
            if p.code == "required" and m is not None and m.group(1) in later:
                continue
            out.append(
                {"path": "$.data" + p.path[1:], "message": p.message, **({"code": p.code} if p.code else {})}
            )
        return out
    return []
