"""The rendered card model: what every target (RCS JSON, legacy text, image, video) consumes.

Templates + data are bound into these plain values once; each target then reads the same
model, so RCS, USSD and the preview image can never disagree about a card's content.

Treat them as immutable (constant buttons are even shared between renders). They are not
`frozen=True` only because frozen dataclasses pay ~1.3 µs per construction in `__setattr__`
guards, a tenth of the whole render budget for a carousel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

SuggestionKind = Literal[
    "reply",
    "openUrl",
    "dial",
    "showLocation",
    "createCalendarEvent",
    "composeTextMessage",
]
SUGGESTION_KINDS: tuple[SuggestionKind, ...] = get_args(SuggestionKind)

Orientation = Literal["VERTICAL", "HORIZONTAL"]
ImageAlignment = Literal["LEFT", "RIGHT"]
MediaHeight = Literal["SHORT_HEIGHT", "MEDIUM_HEIGHT", "TALL_HEIGHT"]
CardWidth = Literal["SMALL_WIDTH", "MEDIUM_WIDTH"]
Phase = Literal["pre-call", "in-call", "hang-up"]
PHASES: tuple[Phase, ...] = get_args(Phase)


@dataclass(slots=True)
class Suggestion:
    """One button/chip. `kind` selects which of the optional fields are meaningful."""

    kind: SuggestionKind
    text: str
    postback: str
    url: str | None = None  # openUrl; also showLocation's fallbackUrl
    phone: str | None = None  # dial, composeTextMessage
    latitude: float | None = None  # showLocation
    longitude: float | None = None
    label: str | None = None  # showLocation label
    start: str | None = None  # createCalendarEvent, RFC 3339
    end: str | None = None
    title: str | None = None  # createCalendarEvent title
    description: str | None = None  # createCalendarEvent description
    message: str | None = None  # composeTextMessage prefilled text


@dataclass(slots=True)
class Media:
    url: str
    content_type: str
    height: MediaHeight = "MEDIUM_HEIGHT"
    file_size: int | None = None
    thumbnail_url: str | None = None
    thumbnail_content_type: str | None = None
    thumbnail_file_size: int | None = None
    description: str | None = None


@dataclass(slots=True)
class Card:
    title: str | None = None
    description: str | None = None
    media: Media | None = None
    suggestions: tuple[Suggestion, ...] = ()


@dataclass(slots=True)
class Brand:
    """Who the card speaks for: shown as 【signature】 in text and as colour/logo in images."""

    signature: str
    name: str
    color: str = "#1F6FEB"
    logo: str | None = None  # path relative to the template folder or assets/


@dataclass(slots=True)
class Message:
    """A rendered message: one card, or a carousel of cards, plus optional chips after it."""

    kind: Literal["card", "carousel"]
    cards: tuple[Card, ...]
    brand: Brand
    template: str
    phase: Phase
    orientation: Orientation = "VERTICAL"
    image_alignment: ImageAlignment | None = None
    card_width: CardWidth = "MEDIUM_WIDTH"
    chips: tuple[Suggestion, ...] = ()
    legacy_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def all_suggestions(self) -> tuple[Suggestion, ...]:
        """Card buttons in reading order, then chips: the order a numbered menu uses."""
        out: list[Suggestion] = []
        for card in self.cards:
            out.extend(card.suggestions)
        out.extend(self.chips)
        return tuple(out)
