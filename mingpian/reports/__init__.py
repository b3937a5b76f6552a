"""The enterprise reports page (`/reports`) and its static files."""

from .page import setup

__all__ = ["setup"]
