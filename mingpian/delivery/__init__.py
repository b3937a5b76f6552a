"""Calling-card delivery: call events in, the right card out on the right channel, with
fallback, receipts, quotas and reports (docs/delivery.md). Server-side composition: it uses
renderer/ and chatbot/; neither imports it."""

from __future__ import annotations

from .api import setup

__all__ = ["setup"]
