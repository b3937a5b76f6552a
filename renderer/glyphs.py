"""Which words of a card no font can draw: for `mingpian lint` and the studio's warnings.

Pictures and videos draw every character with the font chain (fonts.py); one that no font of
the chain covers would show as a box (tofu). This finds them before a card is sent, naming the
field: the drawn field of the card (`cards[0].title`) and the sample data's JSON path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import Problem
from .fonts import uncovered
from .jsonpath import json_path
from .model import Message

CODE = "uncovered_character"


def _message(chars: list[str]) -> str:
    shown = "、".join(f"「{c}」(U+{ord(c[0]):04X})" for c in chars[:5])
    more = f" 等 {len(chars)} 个" if len(chars) > 5 else ""
    return f"没有字体能画出 {shown}{more}，图片和视频里会显示成方框"


def message_fields(message: Message) -> Iterator[tuple[str, str]]:
    """(field, text) for every text a picture or video of `message` draws."""
    yield "brand.name", message.brand.name
    for i, card in enumerate(message.cards):
        where = f"cards[{i}]"
        if card.title:
            yield f"{where}.title", card.title
        if card.description:
            yield f"{where}.description", card.description
        for j, s in enumerate(card.suggestions):
            yield f"{where}.suggestions[{j}].text", s.text
    for j, s in enumerate(message.chips):
        yield f"chips[{j}].text", s.text


def data_strings(
    value: Any, parts: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path parts, text) for every string in `value` (the card's data)."""
    if isinstance(value, str):
        yield parts, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from data_strings(v, (*parts, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from data_strings(v, (*parts, i))


def glyph_problems(message: Message, data: Any = None, data_file: str | None = None) -> list[Problem]:
    """A problem for each data string and each drawn field holding a character no font draws.
    A character found in the data is reported there (where it is fixed), not again in the card."""
    out: list[Problem] = []
    seen: set[str] = set()
    for parts, text in data_strings(data):
        chars = uncovered(text)
        if chars:
            seen.update(chars)
            out.append(Problem(json_path(parts), _message(chars), data_file))
    for path, text in message_fields(message):
        chars = [c for c in uncovered(text) if c not in seen]
        if chars:
            out.append(Problem(path, _message(chars)))
    return out
