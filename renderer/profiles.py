"""Per-carrier capability profiles: the limits a rendered card must respect.

The default profile is the limits of the GSMA RCS Universal Profile and Google's RBM
documentation. The Chinese carriers' CSP interface documents allow up to 12 carousel cards and
a 2000-character text; where sources disagree the *default* takes the stricter value so a card
valid by default is valid everywhere, and the carrier profiles relax.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class CarrierProfile:
    name: str
    label: str
    title_max: int = 200
    description_max: int = 2000
    suggestion_text_max: int = 25
    postback_max: int = 2048
    suggestions_per_card_max: int = 4
    chips_max: int = 11
    carousel_min: int = 2
    carousel_max: int = 10
    url_max: int = 2048
    image_max_bytes: int = 2 * 1024 * 1024
    video_max_bytes: int = 5 * 1024 * 1024
    thumbnail_max_bytes: int = 200 * 1024
    video_max_seconds: float = 10.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Labels are what a person picks from in the studio, so they are Chinese; `name` is the stable
# machine name. Sources: GSMA UP / RBM (default), the carriers' CSP interface V1.0.4.
DEFAULT = CarrierProfile(name="default", label="通用（各平台共同的最严限制）")

PROFILES: dict[str, CarrierProfile] = {
    p.name: p
    for p in (
        DEFAULT,
        replace(
            DEFAULT,
            name="china-telecom",
            label="中国电信 5G 消息",
            carousel_max=12,
            video_max_bytes=10 * 1024 * 1024,
        ),
        replace(
            DEFAULT,
            name="china-unicom",
            label="中国联通 5G 消息",
            carousel_max=12,
            video_max_bytes=10 * 1024 * 1024,
        ),
        replace(
            DEFAULT,
            name="china-mobile",
            label="中国移动 5G 消息（保守：通用限制）",
        ),
    )
}


def get_profile(name: str | None) -> CarrierProfile:
    """Look a profile up by name; unknown names raise KeyError (callers turn it into a 4xx)."""
    if not name:
        return DEFAULT
    return PROFILES[name]
