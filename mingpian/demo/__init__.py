"""The demo a fresh clone runs: `mingpian serve` with nothing configured, on loopback, starts the
simulated carrier network (simulators/: the MaaP, the SMSC, the card-SMS platform) as tasks of
the server on loopback ports, seeds a sample courier enterprise and an operator key, and prints
how to sign in. The console's 模拟来电 page places calls to the demo's phones and shows what the
simulators received. A configured deployment (a key, a gateway, a MaaP, a seed, a database) never
runs any of it; `demo = off` turns it off (plan.py decides)."""

from __future__ import annotations

from aiohttp import web

from .api import routes
from .network import attach
from .plan import Demo, plan, why_not

__all__ = ["Demo", "add_to", "plan", "why_not"]


def add_to(app: web.Application, demo: Demo) -> None:
    """Run `demo` with `app` (made from `demo.settings`): its network, seed work and routes."""
    attach(app, demo)
    routes(app)
