"""Numbers as people in China read them (delivery/readable.py)."""

from __future__ import annotations

import pytest

from delivery.readable import readable


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+8613800138000", "138 0013 8000"),
        ("+8675588881234", "0755-8888 1234"),
        ("+861088881234", "010-8888 1234"),
        ("+862188881234", "021-8888 1234"),
        ("+8657188881234", "0571-8888 1234"),
        ("+8657188812345"[:-1], "0571-888 1234"),
        ("+864008111111", "400-811-1111"),
        ("+868008101234", "800-810-1234"),
        ("+14155550100", "+14155550100"),  # another country: E.164
        ("+447700900123", "+447700900123"),
        ("95338", "95338"),  # a service code, as dialled
        ("10690000", "10690000"),
        ("106900001234", "106900001234"),  # an SP code, as dialled
        ("13800138000", "138 0013 8000"),  # national digits, as the card page gets them
        ("075588881234", "0755-8888 1234"),
    ],
)
def test_readable(number: str, shown: str) -> None:
    assert readable(number) == shown
