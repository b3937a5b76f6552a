"""Typed application keys: the one place app-wide state is declared."""

from __future__ import annotations

from aiohttp import web

from renderer import TemplateStore

from .metrics import Metrics
from .settings import Settings

settings_key = web.AppKey("settings", Settings)
templates_key = web.AppKey("templates", TemplateStore)
metrics_key = web.AppKey("metrics", Metrics)
