"""The console (`/console`): enterprises and the operator run their calling cards from the
browser. Every action it takes is a call to the JSON API any client could make (signed in with
a session cookie instead of a key: mingpian/api/delivery/session.py); this package only serves
the HTML shell and its hand-written ES modules and stylesheet (`static/`), reusing the studio's
DOM helpers, schema form and phone mock-ups and the reports page's charts.
"""

from __future__ import annotations

from .page import setup

__all__ = ["setup"]
