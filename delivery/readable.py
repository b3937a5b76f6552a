"""A number as a person in China reads it: the national form with its usual spacing.

Stored numbers are E.164 (`model.normalize_number`). People read a mainland number the way it
is dialled at home — 138 0013 8000, 0755-8888 1234, 400-811-1111 — so that is how a card's
signature and every page shows one; a number of another country keeps its E.164 form, and a
service code (95338, 10086) is shown as dialled.
"""

from __future__ import annotations

# Area codes of two digits after the trunk 0: Beijing 10 and 20–29; all others have three.
_TWO_DIGIT_AREAS = ("10", "2")


def readable(number: str) -> str:
    """`+8613800138000` → `138 0013 8000`, `+8675588881234` → `0755-8888 1234`,
    `+864008111111` → `400-811-1111`; anything else as it is."""
    if not number.startswith("+86") or not number[3:].isdigit():
        return number
    n = number[3:]
    if len(n) == 11 and n[0] == "1":
        return f"{n[:3]} {n[3:7]} {n[7:]}"
    if len(n) == 10 and n[:3] in ("400", "800"):
        return f"{n[:3]}-{n[3:6]}-{n[6:]}"
    area = 2 if n.startswith(_TWO_DIGIT_AREAS) else 3
    local = n[area:]
    if (n[0] in "23456789" or n.startswith("10")) and 7 <= len(local) <= 8:
        return f"0{n[:area]}-{local[:-4]} {local[-4:]}"
    return number
