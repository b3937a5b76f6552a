"""A phone number as a person reads it on a page (`138 0000 0001`, `400-811-1111`,
`010-8888 6666`, `95555`), not the E.164 a program stores."""

from __future__ import annotations

_HOTLINES = ("400", "800")


def readable(number: str) -> str:
    """Chinese numbers grouped as they are written; any other number as given (E.164)."""
    n = number.strip()
    if not n.startswith("+86"):
        return n if n.startswith("+") or not n.isdigit() or len(n) <= 8 else _local(n)
    return _local(n[3:])


def _local(n: str) -> str:
    if not n.isdigit():
        return n
    if len(n) == 11 and n.startswith("1"):  # mobile
        return f"{n[:3]} {n[3:7]} {n[7:]}"
    if len(n) == 10 and n.startswith(_HOTLINES):
        return f"{n[:3]}-{n[3:6]}-{n[6:]}"
    if n.startswith("0"):
        n = n[1:]
    if len(n) <= 6:  # short numbers (95555, 12345)
        return n
    area = 2 if n.startswith(("10", "2")) else 3
    rest = n[area:]
    grouped = f"{rest[:4]} {rest[4:]}" if len(rest) == 8 else rest
    return f"0{n[:area]}-{grouped}"
