"""Two sample enterprises that simulations, benchmarks and tests run calling cards for: sf, a
courier (a courier's verified mobile line with his staff card when it rings and the courier
hang-up card when it ends, an unverified hotline, a small package) and cmb, a bank (its
verified 95555 with the identity card). Keys and numbers are fixed so a run can address them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent.parent / "card_templates"
OPERATOR = "mpk_operator-test-key-0123456789abcdef"
SF_KEY = "mpk_sf-test-key-0123456789abcdef"
CMB_KEY = "mpk_cmb-test-key-0123456789abcdef"
SF_LINE = "+8613800000001"  # a courier's mobile line (staff member)
SF_HOTLINE = "+864008111111"
CMB_LINE = "95555"
CUSTOMER = "+8613912345678"
DAY = 86400.0
CHATBOT = "sip:106500@botplatform.rcs.chinaunicom.cn"  # the 5G chatbot of enterprise sf


def sample(name: str) -> dict[str, Any]:
    """A shipped template's sample data."""
    return json.loads((TEMPLATES / name / "sample.json").read_text("utf-8"))


def seed_doc(
    policy: dict[str, Any] | None = None, packages: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The seed document (`delivery_seed`) of both enterprises: sf's `policy` and `packages`
    when given, else a fast USSD → flash → SMS chain and a pool of 100 units."""
    staff = sample("staff-card")
    now = time.time()
    return {
        "operator_keys": [OPERATOR],
        "enterprises": [
            {
                "id": "sf",
                "name": "顺丰速运有限公司",
                "signature": "顺丰速运",
                "brand_name": "顺丰速运",
                "color": "#000000",
                "keys": [SF_KEY],
                "policy": policy
                or {"chain": ["ussd", "flash", "sms"], "timeouts": {"ussd": 0.6, "flash": 0.8, "sms": 0.8}},
                "staff": [{"id": "wang", "name": "王建国", "data": {"employee": staff["employee"]}}],
                "lines": [
                    {"number": "138-0000-0001", "kind": "mobile", "staff": "wang", "verified": True},
                    {"number": "400-811-1111", "kind": "hotline", "group": "hotline"},
                ],
                "cards": [
                    {
                        "id": "pre",
                        "phase": "ringing",
                        "template": "staff-card",
                        "data": {"company": staff["company"]},
                    },
                    {
                        "id": "hangup",
                        "phase": "ended",
                        "template": "courier-hangup",
                        "data": sample("courier-hangup"),
                    },
                ],
                "packages": packages
                if packages is not None
                else [
                    {
                        "id": "pool1",
                        "kind": "pool",
                        "units": 100,
                        "price": 5.0,
                        "policy": "stop",
                        "valid_from": now - DAY,
                        "valid_to": now + 30 * DAY,
                    }
                ],
            },
            {
                "id": "cmb",
                "name": "招商银行",
                "signature": "招商银行",
                "keys": [CMB_KEY],
                "policy": {"chain": ["ussd", "flash"], "timeouts": {"ussd": 0.6, "flash": 0.8}},
                "lines": [{"number": "95555", "kind": "short", "verified": True}],
                "cards": [
                    {
                        "id": "identity",
                        "phase": "ringing",
                        "template": "bank-identity",
                        "data": sample("bank-identity"),
                    }
                ],
            },
        ],
    }
