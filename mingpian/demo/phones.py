"""The demo's enterprise and its phones: who calls, who answers, and what each phone can show."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from simulators.seeds import sample

ENTERPRISE = "feihong"
LINE = "+8613800000088"  # the courier's mobile line, verified
HOTLINE = "+864008880088"
CHATBOT = "sip:106500@botplatform.rcs.chinaunicom.cn"  # the courier bot (chatbots/courier)
DAY = 86400.0
PAGE = f"/console#/e/{ENTERPRISE}/simulate"  # the console's 模拟来电 page for this enterprise


@dataclass(frozen=True, slots=True)
class DemoPhone:
    number: str
    name: str
    shows: str  # what the phone can show, in words
    kind: str  # rcs | cardsms | ussd | fallback


PHONES = (
    DemoPhone("+8613912340000", "5G 消息手机", "能显示 5G 消息卡片，可以点按钮", "rcs"),
    DemoPhone("+8613912340001", "华为手机（卡片短信）", "收不到 5G 消息，能显示卡片短信", "cardsms"),
    DemoPhone("+8613912340002", "老人机（只支持 USSD）", "只能显示 USSD 文字，回复数字选择", "ussd"),
    DemoPhone(
        "+8613912340003", "普通手机（收不到 USSD 和闪信）", "USSD 和闪信都失败，最后收到短信", "fallback"
    ),
)


def seed_doc(operator_key: str) -> dict[str, Any]:
    """The demo's seed (delivery/seed.py): written at each start, loaded without duplicates."""
    staff = sample("staff-card")
    courier = {
        **staff["employee"],
        "name": "李明",
        "title": "快递员",
        "department": "南山网点",
        "mobile": LINE[3:],
        "greeting": "您好，我是飞鸿速运的快递员，正在为您派送包裹。",
    }
    hangup = {
        **sample("courier-hangup"),
        "waybill": "FH8800012345678",
        "courier": {"name": "李明", "phone": LINE[3:]},
        "tracking_url": "https://feihong.example.cn/track?no=FH8800012345678",
        "photo_url": "https://feihong.example.cn/parcel/FH8800012345678.jpg",
    }
    now = time.time()
    return {
        "operator_keys": [operator_key],
        "enterprises": [
            {
                "id": ENTERPRISE,
                "name": "飞鸿速运有限公司（演示）",
                "signature": "飞鸿速运",
                "brand_name": "飞鸿速运",
                "color": "#C8102E",
                "chatbot": CHATBOT,
                "policy": {
                    "chain": ["rcs", "cardsms", "ussd", "flash", "sms"],
                    "timeouts": {"rcs": 4, "cardsms": 5, "ussd": 3, "flash": 3, "sms": 5},
                },
                "staff": [{"id": "li", "name": "李明", "data": {"employee": courier}}],
                "lines": [
                    {"number": LINE, "kind": "mobile", "staff": "li", "verified": True},
                    {"number": HOTLINE, "kind": "hotline", "group": "hotline", "verified": True},
                ],
                "cards": [
                    {
                        "id": "pre",
                        "phase": "ringing",
                        "template": "staff-card",
                        "data": {
                            "company": {
                                **staff["company"],
                                "name": "飞鸿速运有限公司",
                                "short_name": "飞鸿速运",
                            }
                        },
                    },
                    {"id": "hangup", "phase": "ended", "template": "courier-hangup", "data": hangup},
                ],
                "packages": [
                    {
                        "id": "demo",
                        "kind": "pool",
                        "units": 1000,
                        "price": 0.0,
                        "policy": "stop",
                        "valid_from": now - DAY,
                        "valid_to": now + 365 * DAY,
                    }
                ],
            }
        ],
    }
