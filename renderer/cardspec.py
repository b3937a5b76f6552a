"""The card definition (`card.yaml`): compiled once into a tree of Fields, bound per render.

Structure errors are reported at compile time with file:line; evaluation errors at bind time
with the field's file:line and its path in the definition (e.g. `card.suggestions[1].dial.phone`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2.runtime import Context

from .errors import TemplateInvalid
from .fields import Field, SourceCompiler
from .model import SUGGESTION_KINDS, Card, Media, Suggestion
from .sandbox import CardSandbox
from .yamlsrc import LocDict, LocStr, line_of

MAX_LOOP_ITEMS = 100  # a loop may yield at most this many items before limits even apply

# Per suggestion kind: the keys a designer writes, and which are required.
SUGGESTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reply": (("text", "postback"), ("text",)),
    "openUrl": (("text", "url", "postback"), ("text", "url")),
    "dial": (("text", "phone", "postback"), ("text", "phone")),
    "showLocation": (
        ("text", "latitude", "longitude", "label", "fallbackUrl", "postback"),
        ("text", "latitude", "longitude"),
    ),
    "createCalendarEvent": (
        ("text", "start", "end", "title", "description", "postback"),
        ("text", "start", "end", "title"),
    ),
    "composeTextMessage": (("text", "phone", "message", "postback"), ("text", "phone")),
}
MEDIA_FIELDS = {
    "url": "url",
    "contentType": "content_type",
    "height": "height",
    "fileSize": "file_size",
    "thumbnailUrl": "thumbnail_url",
    "thumbnailContentType": "thumbnail_content_type",
    "thumbnailFileSize": "thumbnail_file_size",
    "description": "description",
}
_ATTR = {"fallbackUrl": "url"}
_NUMBER_MEDIA_FIELDS = frozenset({"file_size", "thumbnail_file_size"})
CARD_KEYS = ("for", "if", "layout", "media", "title", "description", "suggestions")
LAYOUT_KEYS = ("orientation", "imageAlignment")
_FOR = re.compile(r"^\s*([A-Za-z_]\w*)\s+in\s+(.+?)\s*$")


_KINDS = {
    "dict": "映射",
    "list": "列表",
    "tuple": "列表",
    "str": "文字",
    "int": "整数",
    "float": "数字",
    "bool": "真假值",
    "NoneType": "空值",
}


def _kind(value: Any) -> str:
    """A value's type as a designer calls it (YAML's mapping, list, text…)."""
    for t in type(value).__mro__:
        if t.__name__ in _KINDS:
            return _KINDS[t.__name__]
    return type(value).__name__


class _Compiler(SourceCompiler):
    def mapping(self, node: Any, path: str, allowed: Iterable[str]) -> LocDict:
        if not isinstance(node, dict):
            raise self.fail(node, path, f"这里应该是「键: 值」的映射，却是{_kind(node)}")
        allowed = tuple(allowed)
        for key in node:
            if key not in allowed:
                kl = getattr(node, "key_lines", {}).get(key, line_of(node, 1))
                msg = f"不认识的键「{key}」（可用的有：{'、'.join(allowed)}）"
                raise TemplateInvalid.at(self.file, kl, f"{path}.{key}", msg)
        return node  # type: ignore[return-value]

    def field(self, node: Any, path: str) -> Field:
        if isinstance(node, dict | list):
            raise self.fail(node, path, f"这里应该是一个值，却是{_kind(node)}")
        return Field(self.env, node, self.file, path)

    def loop(self, node: LocDict, path: str) -> tuple[Loop | None, Field | None]:
        loop = None
        if "for" in node:
            src = node["for"]
            m = _FOR.match(str(src))
            if not m:
                raise self.fail(src, f"{path}.for", "「for」要写成「名字 in 表达式」，如 offer in offers")
            loop = Loop(m.group(1), self.field(_with_line("{{ " + m.group(2) + " }}", src), f"{path}.for"))
        cond = None
        if "if" in node:
            src = node["if"]
            cond = self.field(_with_line("{{ " + str(src) + " }}", src), f"{path}.if")
        return loop, cond

    def suggestion(self, node: Any, path: str) -> CompiledSuggestion:
        if not isinstance(node, dict):
            raise self.fail(node, path, "按钮要写成映射，如 {reply: {text: …, postback: …}}")
        kinds = [k for k in node if k in SUGGESTION_FIELDS]
        extra = [k for k in node if k not in SUGGESTION_FIELDS and k not in ("for", "if")]
        if extra or len(kinds) != 1:
            raise self.fail(
                node,
                path,
                "一个按钮要有且只有一种："
                + "、".join(SUGGESTION_KINDS)
                + (f"（不认识的键「{extra[0]}」）" if extra else ""),
            )
        kind = kinds[0]
        allowed, required = SUGGESTION_FIELDS[kind]
        spec = self.mapping(node[kind], f"{path}.{kind}", allowed)
        for req in required:
            if req not in spec:
                raise self.fail(spec, f"{path}.{kind}", f"缺少必填的键「{req}」")
        fields = {k: self.field(v, f"{path}.{kind}.{k}") for k, v in spec.items()}
        loop, cond = self.loop(node, path)  # type: ignore[arg-type]
        compiled = CompiledSuggestion(kind, fields, loop, cond)
        if loop is None and cond is None and all(f.is_const for f in fields.values()):
            # Constant folding: a button with no expressions is built once, here.
            compiled.static = _bind_suggestion(compiled, None)
        return compiled

    def suggestions(self, node: Any, path: str) -> list[CompiledSuggestion]:
        if node is None:
            return []
        if not isinstance(node, list):
            raise self.fail(node, path, "这里应该是按钮列表（每项以「- 」开头）")
        return [self.suggestion(item, f"{path}[{i}]") for i, item in enumerate(node)]

    def card(self, node: Any, path: str, allow_layout: bool) -> CompiledCard:
        keys = CARD_KEYS if allow_layout else tuple(k for k in CARD_KEYS if k != "layout")
        spec = self.mapping(node, path, keys)
        media = None
        if "media" in spec:
            mspec = self.mapping(spec["media"], f"{path}.media", MEDIA_FIELDS)
            if "url" not in mspec or "contentType" not in mspec:
                raise self.fail(mspec, f"{path}.media", "media 需要「url」和「contentType」")
            media = {MEDIA_FIELDS[k]: self.field(v, f"{path}.media.{k}") for k, v in mspec.items()}
        loop, cond = self.loop(spec, path)
        return CompiledCard(
            title=self.field(spec["title"], f"{path}.title") if "title" in spec else None,
            description=(
                self.field(spec["description"], f"{path}.description") if "description" in spec else None
            ),
            media=media,
            suggestions=self.suggestions(spec.get("suggestions"), f"{path}.suggestions"),
            loop=loop,
            cond=cond,
        )


def _with_line(text: str, origin: Any) -> Any:
    return LocStr(text, line_of(origin, 1))


@dataclass(slots=True)
class Loop:
    var: str
    iterable: Field


@dataclass(slots=True)
class CompiledSuggestion:
    kind: str
    fields: dict[str, Field]
    loop: Loop | None
    cond: Field | None
    static: Suggestion | None = None


@dataclass(slots=True)
class CompiledCard:
    title: Field | None
    description: Field | None
    media: dict[str, Field] | None
    suggestions: list[CompiledSuggestion]
    loop: Loop | None
    cond: Field | None


@dataclass(slots=True)
class CardSpec:
    """A compiled card.yaml."""

    kind: str  # "card" | "carousel"
    cards: list[CompiledCard]
    chips: list[CompiledSuggestion]
    orientation: Field | None
    image_alignment: Field | None
    card_width: Field | None
    file: str

    def bind_cards(self, ctx: Context) -> tuple[Card, ...]:
        if len(self.cards) == 1 and self.cards[0].loop is None and self.cards[0].cond is None:
            return (_bind_card(self.cards[0], ctx),)  # a single card: no scope generator to run
        return tuple(_bind_card(c, scope) for c in self.cards for scope in _scopes(c, ctx))

    def bind_chips(self, ctx: Context) -> tuple[Suggestion, ...]:
        return _bind_suggestions(self.chips, ctx)

    def fields(self) -> Iterator[Field]:
        """Every field of the definition, loops' and conditions' included."""
        for f in (self.orientation, self.image_alignment, self.card_width):
            if f is not None:
                yield f
        for card in self.cards:
            yield from _node_fields(card)
            for f in (card.title, card.description, *(card.media or {}).values()):
                if f is not None:
                    yield f
            for s in card.suggestions:
                yield from _node_fields(s)
        for s in self.chips:
            yield from _node_fields(s)


def _node_fields(node: CompiledCard | CompiledSuggestion) -> Iterator[Field]:
    if node.loop is not None:
        yield node.loop.iterable
    if node.cond is not None:
        yield node.cond
    if isinstance(node, CompiledSuggestion):
        yield from node.fields.values()


def compile_card_spec(env: CardSandbox, root: Any, file: str) -> CardSpec:
    c = _Compiler(env, file)
    spec = c.mapping(root, "$", ("card", "carousel", "chips"))
    if ("card" in spec) == ("carousel" in spec):
        raise c.fail(spec, "$", "「card」（单张卡片）和「carousel」（轮播）要有且只有一个")
    chips = c.suggestions(spec.get("chips"), "chips")
    if "card" in spec:
        card_node = spec["card"]
        card = c.card(card_node, "card", allow_layout=True)
        if card.loop is not None:
            raise c.fail(card_node, "card.for", "单张卡片不能用 for 循环；要多张请用 carousel")
        orientation = alignment = None
        if isinstance(card_node, dict) and "layout" in card_node:
            layout = c.mapping(card_node["layout"], "card.layout", LAYOUT_KEYS)
            if "orientation" in layout:
                orientation = c.field(layout["orientation"], "card.layout.orientation")
            if "imageAlignment" in layout:
                alignment = c.field(layout["imageAlignment"], "card.layout.imageAlignment")
        return CardSpec("card", [card], chips, orientation, alignment, None, file)
    car = c.mapping(spec["carousel"], "carousel", ("width", "cards"))
    cards_node = car.get("cards")
    if not isinstance(cards_node, list) or not cards_node:
        raise c.fail(car, "carousel.cards", "carousel 需要一个不为空的「cards」列表")
    cards = [c.card(n, f"carousel.cards[{i}]", allow_layout=False) for i, n in enumerate(cards_node)]
    width = c.field(car["width"], "carousel.width") if "width" in car else None
    return CardSpec("carousel", cards, chips, None, None, width, file)


# ---- binding -------------------------------------------------------------------------------


def _scopes(node: CompiledCard | CompiledSuggestion, ctx: Context) -> Iterator[Context]:
    """Yield the context(s) a node renders in: once, once per loop item, or not at all."""
    if node.loop is None:
        if node.cond is None or node.cond.evaluate(ctx):
            yield ctx
        return
    items = node.loop.iterable.evaluate(ctx)
    if isinstance(items, dict):
        items = list(items.items())
    if not isinstance(items, list | tuple):
        raise node.loop.iterable.error(f"「for」要对一个列表循环，却是{_kind(items)}")
    if len(items) > MAX_LOOP_ITEMS:
        raise node.loop.iterable.error(f"「for」循环了 {len(items)} 项（最多 {MAX_LOOP_ITEMS} 项）")
    n = len(items)
    var = node.loop.var
    if type(ctx) is dict:  # the fast path (fastbind.py): the scope is a plain dict
        for i, item in enumerate(items):
            loop = {"index": i + 1, "index0": i, "first": i == 0, "last": i == n - 1, "length": n}
            scope = {**ctx, var: item, "loop": loop}  # as child_context: the item shadows the data
            if node.cond is None or node.cond.evaluate(scope):
                yield scope  # type: ignore[misc]
        return
    env: CardSandbox = ctx.environment  # type: ignore[assignment]
    for i, item in enumerate(items):
        scope = env.child_context(
            ctx,
            {
                var: item,
                "loop": {"index": i + 1, "index0": i, "first": i == 0, "last": i == n - 1, "length": n},
            },
        )
        if node.cond is None or node.cond.evaluate(scope):
            yield scope


def _text(f: Field | None, ctx: Context | None) -> str | None:
    """A text field's value; None/empty means the field is left out of the card."""
    return None if f is None else f.text(ctx)


def _number(f: Field | None, ctx: Context | None, kind: type[int] | type[float]) -> Any:
    if f is None:
        return None
    v = f.evaluate(ctx)  # type: ignore[arg-type]  # a constant field needs no context
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise f.error(f"这里应该是数字，却是 {v!r}")
    try:
        return kind(v)
    except (TypeError, ValueError):
        raise f.error(f"这里应该是数字，却是 {v!r}") from None


def _bind_suggestions(nodes: list[CompiledSuggestion], ctx: Context) -> tuple[Suggestion, ...]:
    out: list[Suggestion] = []
    for node in nodes:
        if node.static is not None:
            out.append(node.static)
            continue
        if node.loop is None and node.cond is None:  # the usual button: no scope generator
            out.append(_bind_suggestion(node, ctx))
            continue
        for scope in _scopes(node, ctx):
            out.append(_bind_suggestion(node, scope))
    return tuple(out)


def _bind_suggestion(node: CompiledSuggestion, ctx: Context | None) -> Suggestion:
    f = node.fields
    text = f["text"].text(ctx)
    if text is None:
        raise f["text"].error("按钮文字是空的")
    postback = _text(f.get("postback"), ctx) or text
    kw: dict[str, Any] = {}
    kind = node.kind
    if kind == "reply":
        return Suggestion(kind, text, postback)  # positional: keywords cost more
    if kind == "openUrl":
        url = f["url"].text(ctx)
        if url is None:
            raise f["url"].error("openUrl.url 是空的")
        return Suggestion(kind, text, postback, url)
    if kind == "dial":
        phone = f["phone"].text(ctx)
        if phone is None:
            raise f["phone"].error("dial.phone 是空的")
        return Suggestion(kind, text, postback, None, phone)
    if kind == "showLocation":
        kw["latitude"] = _number(f["latitude"], ctx, float)
        kw["longitude"] = _number(f["longitude"], ctx, float)
        kw["label"] = _text(f.get("label"), ctx)
        kw["url"] = _text(f.get("fallbackUrl"), ctx)
    elif node.kind == "createCalendarEvent":
        kw["start"] = _text(f["start"], ctx)
        kw["end"] = _text(f["end"], ctx)
        kw["title"] = _text(f["title"], ctx)
        kw["description"] = _text(f.get("description"), ctx)
    elif node.kind == "composeTextMessage":
        kw["phone"] = _text(f["phone"], ctx)
        kw["message"] = _text(f.get("message"), ctx)
    for key in SUGGESTION_FIELDS[node.kind][1]:
        attr = _ATTR.get(key, key)
        if key != "text" and kw.get(attr) is None:
            raise f[key].error(f"{node.kind}.{key} 是空的")
    return Suggestion(kind=node.kind, text=text, postback=postback, **kw)  # type: ignore[arg-type]


def _bind_card(node: CompiledCard, ctx: Context) -> Card:
    media = None
    if node.media is not None:
        m = node.media
        values: dict[str, Any] = {}
        for key, field in m.items():
            value = _number(field, ctx, int) if key in _NUMBER_MEDIA_FIELDS else field.text(ctx)
            if value is not None:  # left out: Media's default applies
                values[key] = value
        if values.get("url"):
            if not values.get("content_type"):
                raise m["content_type"].error("media 的 contentType 是空的")
            media = Media(**values)
    title, description = node.title, node.description
    return Card(
        title=None if title is None else title.text(ctx),
        description=None if description is None else description.text(ctx),
        media=media,
        suggestions=_bind_suggestions(node.suggestions, ctx),
    )
