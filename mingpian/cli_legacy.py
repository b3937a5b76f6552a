"""`mingpian render --to ussd|flash|sms`: the degraded text, then its segments and reply map."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from renderer.gsm import Channel
from renderer.legacy import degrade_template

if TYPE_CHECKING:  # cli_targets imports this module; the type alone is needed here
    from .cli_targets import TargetInput


def legacy_target(channel: Channel) -> Callable[[TargetInput], bytes]:
    def target(inp: TargetInput) -> bytes:
        lt = degrade_template(inp.template, inp.message, channel, inp.profile)
        return lt.report().encode("utf-8")

    target.__name__ = f"{channel}_target"
    return target
