"""Typed application keys of the state features share: settings, templates, metrics, and the
chatbot flows (the chatbot serves them; the studio previews them).

A feature's own state is declared beside its setup function: `runtime_key` and the chatbot
metrics in api/chatbot.py, `delivery_key` in api/delivery/state.py, `formats_key` in
api/templates.py, the OpenAPI document's keys in openapi.py, `media_service_key` in media/api.py,
and the studio's in studio/chat.py, studio/events.py and studio/preview_bot.py.
"""

from __future__ import annotations

from aiohttp import web

from chatbot.flows import FlowStore
from renderer import TemplateStore

from .metrics import Metrics
from .settings import Settings

settings_key = web.AppKey("settings", Settings)
templates_key = web.AppKey("templates", TemplateStore)
metrics_key = web.AppKey("metrics", Metrics)
flows_key = web.AppKey("chatbot_flows", FlowStore)
# Where the demo's 模拟来电 page is (mingpian/demo/), set only while the demo runs: the studio links it.
demo_page_key = web.AppKey("demo_page", str)
