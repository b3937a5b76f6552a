"""Template API: list, describe, render (RCS here; other targets register formats)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chatbot.answers import CODE as UNANSWERED
from chatbot.answers import unanswered, unanswered_text
from renderer import (
    BOTMESSAGE,
    PROFILES,
    CardTemplate,
    CarrierProfile,
    Message,
    RenderError,
    TemplateInvalid,
    get_profile,
    to_rcs,
)
from renderer.mediarefs import refs, with_urls
from renderer.schema_text import pattern_text

from ..errors import ApiError
from ..httpjson import json_response, read_json_body
from ..keys import flows_key, metrics_key, settings_key, templates_key
from ..library import library_links_key


@dataclass(slots=True)  # not frozen: built on every render, frozen init costs ~1 µs
class RenderRequest:
    """What a format handler gets: the request, the template, validated + bound card, profile."""

    request: web.Request
    template: CardTemplate
    data: dict[str, Any]
    message: Message
    profile: CarrierProfile
    brand: dict[str, Any] | None = None  # an enterprise's brand instead of the template's (previews)


FormatHandler = Callable[[RenderRequest], Awaitable[web.StreamResponse]]
formats_key = web.AppKey("render_formats", dict[str, FormatHandler])


async def list_templates(request: web.Request) -> web.Response:
    store = request.app[templates_key]
    items: list[dict[str, Any]] = []
    for name in store.names():
        try:
            t = store.get(name)
            m = t.manifest
            items.append(
                {
                    "name": name,
                    "title": m.title,
                    "description": m.description,
                    "phase": m.phase,
                    "kind": t.spec.kind,
                    "tags": list(m.tags),
                    "brand": dict(m.brand),
                    "templateVersion": t.version,
                    "ok": True,
                }
            )
        except TemplateInvalid as exc:
            items.append({"name": name, "ok": False, "error": exc.to_json()})
    return json_response({"templates": items})


def _patterns(node: Any) -> set[str]:
    """Every `pattern` string in a schema, at any depth."""
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node))
    return set()


async def get_template(request: web.Request) -> web.Response:
    t = request.app[templates_key].get(request.match_info["name"])
    body = t.describe()
    # Each schema pattern in words, so a form can say "8–20 位大写字母或数字", never the regex.
    body["patternText"] = {p: text for p in sorted(_patterns(t.schema)) if (text := pattern_text(p))}
    return json_response(body)


def _profile(request: web.Request) -> CarrierProfile:
    name = request.query.get("profile") or request.app[settings_key].default_profile
    try:
        return get_profile(name)
    except KeyError:
        raise ApiError(
            400,
            "unknown_profile",
            f"unknown carrier profile {name!r}; known: {', '.join(sorted(PROFILES))}",
            path="profile",
        ) from None


async def render_template(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[settings_key]
    fmt = request.query.get("format", "rcs")
    handlers = app[formats_key]
    if fmt not in handlers:
        raise ApiError(
            400,
            "unknown_format",
            f"unknown format {fmt!r}; available: {', '.join(sorted(handlers))}",
            path="format",
        )
    profile = _profile(request)
    template = app[templates_key].get(request.match_info["name"])
    data = await read_json_body(request, settings.max_json_depth)
    start = time.perf_counter()
    try:
        message = template.render(data)
        response = await handlers[fmt](RenderRequest(request, template, data, message, profile))
    except RenderError as exc:
        app[metrics_key].render_errors.inc(template.name, exc.kind)
        raise
    app[metrics_key].render.observe(time.perf_counter() - start, template.name, fmt)
    return response


async def render_rcs(rr: RenderRequest) -> web.Response:
    message = rr.message
    found = refs(message)
    if found:  # library files named by `media:<id>`: the payload carries their public URLs
        message = with_urls(message, rr.request.app[library_links_key].links(found))
    payload = to_rcs(message, rr.profile)
    accept = rr.request.headers.get("Accept", "")
    if BOTMESSAGE in accept and payload.chips is None:
        # A caller that asks for the bare GSMA content type gets exactly that.
        return json_response(payload.message, content_type=BOTMESSAGE)
    body = {
        "template": rr.template.name,
        "templateVersion": rr.template.version,
        "profile": rr.profile.name,
        "brand": {
            "signature": rr.message.brand.signature,
            "name": rr.message.brand.name,
            "color": rr.message.brand.color,
        },
        "messageList": payload.message_list(),
    }
    if rr.request.query.get("lint") in ("1", "true"):
        # The studio asks: characters no font draws (boxes in the picture and video), by field.
        # Not on every render: the check costs more than the render itself.
        from renderer.glyphs import CODE, glyph_problems  # deferred: loads every font of the chain

        body["warnings"] = [{"code": CODE, **p.to_json()} for p in glyph_problems(rr.message, rr.data)]
        flows = rr.request.app.get(flows_key)
        if flows is not None and flows.flows:  # buttons no chatbot flow answers, marked before a tap
            body["warnings"] += [
                {
                    "code": UNANSWERED,
                    "path": field,
                    "postback": postback,
                    "message": unanswered_text(text, postback),
                }
                for field, text, postback in unanswered(flows, rr.message)
            ]
    return json_response(body)


async def list_profiles(request: web.Request) -> web.Response:
    return json_response(
        {
            "profiles": [p.to_json() for p in PROFILES.values()],
            "default": request.app[settings_key].default_profile,
        }
    )


def setup(app: web.Application) -> None:
    app[formats_key] = {"rcs": render_rcs}
    app.router.add_get("/api/templates", list_templates, name="templates")
    app.router.add_get("/api/templates/{name}", get_template, name="template")
    app.router.add_post("/api/templates/{name}/render", render_template, name="render")
    app.router.add_get("/api/profiles", list_profiles, name="profiles")
