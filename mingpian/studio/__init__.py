"""The browser studio: a template gallery and a live preview page per template.

Designers see a saved change on a phone mock-up within a second (SSE, see `events`), enterprises
fill in their own data and try the card on 5G and legacy phones. Everything it needs is served
here: HTML shells (`pages`), hand-written JS modules and CSS (`assets`), no CDN, no build step.
"""

from __future__ import annotations

from aiohttp import web

from ..openapi import add_paths
from . import assets, capabilities, chat, events, pages, security
from .docs import PATHS, SCHEMAS


def setup(app: web.Application) -> None:
    security.setup(app)
    pages.setup(app)
    assets.setup(app)
    events.setup(app)
    capabilities.setup(app)
    chat.setup(app)
    add_paths(app, PATHS, SCHEMAS)
