"""The links between features, each made by the app factory (app.py) where it can be read in
order: what one feature lends another (the chatbot's MaaP account to delivery, the media and
library files to the chatbot's uploads) and who hears whom (delivery hears the chatbot's taps,
and the carrier's verdicts on the cards it sent).
The features themselves do not reach into each other's keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from chatbot.hosting import Resolver
from chatbot.uploads import LocalFile
from delivery.gateways.rcs import Messaging
from delivery.library.files import EXTS

from .api.chatbot import runtime_key
from .api.delivery import delivery_key
from .library import library_links_key
from .media import media_service_key


def chatbot_media(app: web.Application) -> Resolver:
    """Our own media URL → the local file, for the chatbot's uploads to the MaaP: a rendered
    `/media/…` file (through the media service) or an enterprise's library file
    (`/media/library/…`); None for any other URL."""

    async def resolve(url: str) -> LocalFile | None:
        lib = app.get(library_links_key)
        prefix = f"{lib.base_url}/media/library/" if lib is not None else ""
        if lib is not None and url.startswith(prefix):
            id, _, ext = url[len(prefix) :].partition(".")
            try:
                path = lib.files.path(id, ext)  # the name is checked: nothing outside the library
            except ValueError:
                return None
            return LocalFile(path, EXTS[ext]) if path.is_file() else None
        svc = app.get(media_service_key)
        got = await svc.local_file(url) if svc is not None else None
        return LocalFile(*got) if got is not None else None

    return resolve


def chatbot_messaging(app: web.Application) -> Messaging | None:
    """Delivery's 5G channel: the chatbot's runtime when it has a MaaP account (started first)."""
    runtime = app.get(runtime_key)
    return runtime if runtime is not None and runtime.has_maap else None


async def delivery_hears_chatbot(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after both started: delivery hears 5G replies and taps, in-process, after the
    chatbot's turn committed, and the platform's status reports (revoke results, cards displayed);
    unhooked before either stops."""
    runtime = app.get(runtime_key)
    service = app.get(delivery_key)
    if runtime is None or service is None:
        yield
        return
    runtime.listeners.append(service.on_chatbot_event)
    runtime.status_listeners.append(service.revoker.on_status)
    runtime.status_listeners.append(service.funnel.on_status)  # 5G "displayed" reports
    runtime.message_listeners.append(service.refusals.on_message)
    try:
        yield
    finally:
        runtime.listeners.remove(service.on_chatbot_event)
        runtime.status_listeners.remove(service.revoker.on_status)
        runtime.status_listeners.remove(service.funnel.on_status)
        runtime.message_listeners.remove(service.refusals.on_message)
