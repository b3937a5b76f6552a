"""A number as a person in China reads it: the national form with its usual spacing.

Stored numbers are E.164 (`model.normalize_number`). People read a mainland number the way it
is dialled at home — 138 0013 8000, 0755-8888 1234, 400-811-1111 — so that is how a card's
signature, the card page (mingpian/h5) and every console page show one (the pages' own copy is
mingpian/studio/static/numbers.js); a number of another country keeps its E.164 form, and a
service code (95338, 10086) or an SP code (106…) is shown as dialled.
"""

from __future__ import annotations

_HOTLINES = ("400", "800")
_TWO_DIGIT_AREAS = ("10", "2")  # Beijing 10 and 20–29; every other area code has three digits


def readable(number: str) -> str:
    """`+8613800138000` → `138 0013 8000`, `+8675588881234` → `0755-8888 1234`,
    `+864008111111` → `400-811-1111`; national digits (`13800138000`, `075588881234`) alike;
    anything else as it is."""
    n = number.strip()
    if n.startswith("+86"):
        shown = _national(n[3:])
    elif n.isdigit() and len(n) > 8:
        shown = _national(n[1:] if n.startswith("0") else n)
    else:
        shown = None
    return shown or n


def _national(n: str) -> str | None:
    """The national form of the digits after +86, or None when they are no number people dial."""
    if not n.isdigit():
        return None
    if len(n) == 11 and n[0] == "1" and n[1] in "3456789":  # mobile
        return f"{n[:3]} {n[3:7]} {n[7:]}"
    if len(n) == 10 and n.startswith(_HOTLINES):
        return f"{n[:3]}-{n[3:6]}-{n[6:]}"
    area = 2 if n.startswith(_TWO_DIGIT_AREAS) else 3
    local = n[area:]
    if (n[0] in "23456789" or n.startswith("10")) and 7 <= len(local) <= 8:
        return f"0{n[:area]}-{local[:-4]} {local[-4:]}"
    return None
