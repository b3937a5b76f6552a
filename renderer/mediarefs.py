"""Library files named in a card: the value `media:<id>` wherever a picture URL or logo goes.

The renderer never learns where a library lives: a picture render gets a resolver (id → a local
file under one allowed folder, `MediaContext.library`), and whoever builds a payload for phones
swaps each `media:<id>` for the file's public URL (`with_urls`) before to_rcs. Ids are 32 hex
digits (a content hash); anything else after `media:` names nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple

from .model import Card, Message

MEDIA_PREFIX = "media:"
_REF = re.compile(r"^media:([0-9a-f]{32})$")


class Link(NamedTuple):
    """Where phones fetch a library file, and what it is."""

    url: str
    content_type: str
    size: int


def media_id(ref: str | None) -> str | None:
    """The library id a value names, or None."""
    if not ref or not ref.startswith(MEDIA_PREFIX):
        return None
    m = _REF.match(ref)
    return m[1] if m else None


def refs(message: Message) -> set[str]:
    """Every `media:<id>` value the message names (media, thumbnails, the brand's logo).
    On every render: a loop over plain attributes, the pattern only where the prefix is."""
    out: set[str] = set()
    logo = message.brand.logo
    if logo and logo.startswith(MEDIA_PREFIX) and _REF.match(logo):
        out.add(logo)
    for card in message.cards:
        m = card.media
        if m is not None:
            for u in (m.url, m.thumbnail_url):
                if u and u.startswith(MEDIA_PREFIX) and _REF.match(u):
                    out.add(u)
    return out


def with_urls(message: Message, links: Mapping[str, Link]) -> Message:
    """A copy with each `media:<id>` found in `links` replaced by its URL (and the media's type
    and size by the file's); the rest unchanged. The message itself is shared by cached renders
    and must not change."""
    if not links:
        return message

    def card(c: Card) -> Card:
        m = c.media
        if m is None or not (m.url in links or m.thumbnail_url in links):
            return c
        if m.url in links:
            link = links[m.url]
            m = replace(m, url=link.url, content_type=link.content_type, file_size=link.size)
        if m.thumbnail_url in links:
            t = links[m.thumbnail_url or ""]
            m = replace(
                m, thumbnail_url=t.url, thumbnail_content_type=t.content_type, thumbnail_file_size=t.size
            )
        return replace(c, media=m)

    brand = message.brand
    if brand.logo in links:
        brand = replace(brand, logo=links[brand.logo or ""].url)
    return replace(message, cards=tuple(card(c) for c in message.cards), brand=brand)


def without_refs(message: Message) -> Message:
    """A copy without the `media:<id>` values left (files the caller may not use or that are
    gone): such a media slot is dropped, such a logo forgotten, as if they were never given."""
    if not refs(message):
        return message
    cards = tuple(
        replace(c, media=None) if c.media is not None and media_id(c.media.url) else c for c in message.cards
    )
    cards = tuple(
        replace(c, media=replace(c.media, thumbnail_url=None, thumbnail_content_type=None))
        if c.media is not None and media_id(c.media.thumbnail_url)
        else c
        for c in cards
    )
    brand = replace(message.brand, logo=None) if media_id(message.brand.logo) else message.brand
    return replace(message, cards=cards, brand=brand)
