"""One generated Python function per card.yaml binding its cards and chips from the data dict.

fastbind.py compiles each simple field into a function; binding still walks the compiled tree
(cardspec.py) and calls each field in turn. For the usual shapes (cards without `for`/`if`,
reply / openUrl / dial buttons without `for`/`if`, media, title, description) this module emits
the whole walk as one function: field expressions inline, constant fields folded, each
Suggestion, Media and Card built directly. Any other node is bound by cardspec.py's own code,
called from the generated function with the same data scope.

The same rules as fastbind.py hold: the source holds only our own tokens (designer text and
fields are passed in as constants), it runs only when every field of the template has a fast
binder, and any exception makes the caller bind again through the sandboxed Jinja path, which
alone decides values that need it and reports every error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import nodes

from . import fastbind
from .cardspec import (
    _NUMBER_MEDIA_FIELDS,
    CardSpec,
    CompiledCard,
    CompiledSuggestion,
    _bind_card,
    _bind_suggestion,
    _number,
    _scopes,
)
from .errors import TemplateInvalid
from .fields import RESULT, Field
from .model import Card, Media, Suggestion

CardBinder = Callable[[dict[str, Any]], tuple[tuple[Card, ...], tuple[Suggestion, ...]]]
_INLINE_KINDS = ("reply", "openUrl", "dial")


def _etext(value: Any) -> str | None:
    """Field.text of an expression's value (its branch after evaluate)."""
    kind = type(value)
    if kind is str:
        return value or None
    if value is None:
        return None
    if kind is int or kind is float or kind is bool:
        return str(value)
    raise fastbind.Unsure  # containers are errors, other objects rare: the Jinja path decides


def _out(parts: tuple[str, ...], limit: int) -> str | None:
    """Field.text of a text field: the joined output, measured, stripped; None when empty."""
    out = "".join(parts)
    if len(out) > limit:
        raise fastbind.Unsure
    return out.strip() or None


class _CardEmitter:
    def __init__(self, env: Any) -> None:
        self.em = fastbind._Emitter(env, RESULT)
        self.limit = int(env.limits.max_output)
        self.objects: list[Any] = []  # Fields, compiled nodes, constant model values
        self.lines: list[str] = []
        self.count = 0

    def obj(self, value: Any) -> str:
        self.objects.append(value)
        return f"O[{len(self.objects) - 1}]"

    def var(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def text(self, field: Field | None) -> str:
        """Source of `field.text(scope)`."""
        if field is None:
            return "None"
        if field.is_const:
            return self.obj(_const_text(field))
        tree = field.fast_tree
        if tree is None:
            raise fastbind.NotSimple("no fast binder")
        if field.mode == "expr":
            return f"_etext({self.em.expr(tree)})"
        assert isinstance(tree, nodes.Template)
        if all(isinstance(n, nodes.Output) for n in tree.body):
            parts = [fastbind._part(self.em, c) for n in tree.body for c in n.nodes]  # type: ignore[attr-defined]
            return f"_out(({''.join(p + ', ' for p in parts)}), {self.limit})"
        return f"{self.obj(field)}.text(s)"  # `{% if %}`: the field's own function

    def suggestion(self, node: CompiledSuggestion) -> str:
        """A variable holding the bound button (only for inlined kinds without for/if)."""
        v = self.var()
        if node.static is not None:
            self.lines.append(f"{v} = {self.obj(node.static)}")
            return v
        f = node.fields
        self.lines.append(f"{v}t = {self.text(f['text'])}")
        if not (f["text"].is_const and _const_text(f["text"]) is not None):
            self.lines.append(f"if {v}t is None:\n        raise Unsure")
        self.lines.append(f"{v}p = {self.text(f.get('postback'))} or {v}t")
        if node.kind == "reply":
            self.lines.append(f"{v} = Suggestion({self.obj(node.kind)}, {v}t, {v}p)")
            return v
        key = "url" if node.kind == "openUrl" else "phone"
        self.lines.append(f"{v}x = {self.text(f[key])}")
        self.lines.append(f"if {v}x is None:\n        raise Unsure")
        extra = f"{v}x" if key == "url" else f"None, {v}x"
        self.lines.append(f"{v} = Suggestion({self.obj(node.kind)}, {v}t, {v}p, {extra})")
        return v

    def suggestions(self, nodes_: list[CompiledSuggestion]) -> str:
        """Source of the tuple of bound buttons."""
        if all(_inline_suggestion(n) for n in nodes_):
            names = [self.suggestion(n) for n in nodes_]
            return f"({''.join(n + ', ' for n in names)})"
        return f"_bind_suggestions({self.obj(nodes_)}, s)"

    def card(self, node: CompiledCard) -> str:
        v = self.var()
        media = "None"
        if node.media is not None:
            media = f"{v}m"
            self.lines.append(f"{v}d = {{}}")
            for key, field in node.media.items():
                if key in _NUMBER_MEDIA_FIELDS:
                    value = f"_number({self.obj(field)}, s, int)"
                elif field.is_const:  # folded: left out when empty, as _bind_card does
                    if _const_text(field) is not None:
                        self.lines.append(f"{v}d[{self.obj(key)}] = {self.text(field)}")
                    continue
                else:
                    value = self.text(field)
                self.lines.append(f"{v}x = {value}")
                self.lines.append(f"if {v}x is not None:\n        {v}d[{self.obj(key)}] = {v}x")
            self.lines.append(f"{media} = None")
            self.lines.append(f"if {v}d.get('url'):")
            self.lines.append(f"    if not {v}d.get('content_type'):\n            raise Unsure")
            self.lines.append(f"    {media} = Media(**{v}d)")
        title, description = self.text(node.title), self.text(node.description)
        self.lines.append(f"{v}a = {title}")
        self.lines.append(f"{v}b = {description}")
        buttons = self.suggestions(node.suggestions)
        self.lines.append(f"{v} = Card({v}a, {v}b, {media}, {buttons})")
        return v


def _const_text(field: Field) -> str | None:
    try:
        return field.text(None)
    except TemplateInvalid:
        raise fastbind.NotSimple("constant refused") from None


def _inline_suggestion(node: CompiledSuggestion) -> bool:
    return node.static is not None or (node.loop is None and node.cond is None and node.kind in _INLINE_KINDS)


def _bind_suggestions(nodes_: list[CompiledSuggestion], scope: dict[str, Any]) -> tuple[Suggestion, ...]:
    out: list[Suggestion] = []
    for node in nodes_:
        if node.static is not None:
            out.append(node.static)
        elif node.loop is None and node.cond is None:
            out.append(_bind_suggestion(node, scope))
        else:
            out.extend(_bind_suggestion(node, sc) for sc in _scopes(node, scope))  # type: ignore[arg-type]
    return tuple(out)


def _bind_cards(node: CompiledCard, scope: dict[str, Any]) -> tuple[Card, ...]:
    return tuple(_bind_card(node, sc) for sc in _scopes(node, scope))  # type: ignore[arg-type]


def compile_card_binder(env: Any, spec: CardSpec) -> CardBinder | None:
    """The generated binder of `spec`'s cards and chips, or None when a field is not simple."""
    ce = _CardEmitter(env)
    try:
        cards: list[str] = []
        for node in spec.cards:
            if node.loop is None and node.cond is None:
                cards.append(f"({ce.card(node)},)")
            else:
                cards.append(f"_bind_cards({ce.obj(node)}, s)")
        chips = ce.suggestions(spec.chips)
    except fastbind.NotSimple:
        return None
    all_cards = " + ".join(cards) if cards else "()"
    body = [*ce.lines, f"return ({all_cards}), {chips}"]
    return fastbind._build(  # type: ignore[no-any-return]
        ce.em,
        body,
        {
            "O": tuple(ce.objects),
            "_etext": _etext,
            "_out": _out,
            "_number": _number,
            "int": int,
            "_bind_suggestions": _bind_suggestions,
            "_bind_cards": _bind_cards,
            "Suggestion": Suggestion,
            "Media": Media,
            "Card": Card,
        },
    )
