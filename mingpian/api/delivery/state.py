"""The delivery API's app state: the process's `DeliveryService`, set up at start-up."""

from __future__ import annotations

from aiohttp import web

from delivery.service import DeliveryService

delivery_key = web.AppKey("delivery", DeliveryService)
