"""Typed application keys of the state every feature shares: settings, templates, metrics.

A feature's own state is declared beside its setup function (`runtime_key` in api/chatbot.py,
`delivery_key` in api/delivery/state.py, the studio's and media's keys in their packages).
"""

from __future__ import annotations

from aiohttp import web

from renderer import TemplateStore

from .metrics import Metrics
from .settings import Settings

settings_key = web.AppKey("settings", Settings)
templates_key = web.AppKey("templates", TemplateStore)
metrics_key = web.AppKey("metrics", Metrics)
