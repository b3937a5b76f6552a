"""Typed application keys: the one place app-wide state is declared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from chatbot.events import InboundEvent
from renderer import TemplateStore

from .metrics import Metrics
from .settings import Settings

settings_key = web.AppKey("settings", Settings)
templates_key = web.AppKey("templates", TemplateStore)
metrics_key = web.AppKey("metrics", Metrics)

# Called after the chatbot committed (or recognised as a repeat) a user's text or tap:
# (app, bot folder, event). Another feature (delivery) registers here at setup; the chatbot
# package itself knows nothing of them. A listener must be idempotent per event.message_id.
ChatbotListener = Callable[[web.Application, str, InboundEvent], Awaitable[None]]
chatbot_listeners_key = web.AppKey("chatbot_listeners", list[ChatbotListener])
