"""Output targets of `mingpian render --to ...`: name → function writing the rendered card.

Each feature registers its targets here (RCS JSON now; legacy text, images and video add
theirs), so the CLI itself stays a thin argument parser. A target returns the bytes to write
to --out (or stdout when --out is not given and the output is text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from renderer import CardTemplate, CarrierProfile, Message, to_rcs

from .cli_legacy import legacy_target
from .cli_media import media_target
from .settings import Settings


@dataclass(frozen=True, slots=True)
class TargetInput:
    template: CardTemplate
    data: dict[str, object]
    message: Message
    profile: CarrierProfile
    settings: Settings  # as the command read them (--config, environment, flags)


Target = Callable[[TargetInput], bytes]


def rcs_target(inp: TargetInput) -> bytes:
    payload = to_rcs(inp.message, inp.profile)
    out = payload.message_list() if payload.chips is not None else payload.message
    return (json.dumps(out, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# Targets whose output is not text: refused on a terminal without --out.
BINARY_TARGETS = frozenset({"png", "jpeg", "webp", "mp4"})

TARGETS: dict[str, Target] = {
    "rcs": rcs_target,
    "ussd": legacy_target("ussd"),
    "flash": legacy_target("flash"),
    "sms": legacy_target("sms"),
    "png": media_target("png"),
    "jpeg": media_target("jpeg"),
    "webp": media_target("webp"),
    "mp4": media_target("mp4"),
}
