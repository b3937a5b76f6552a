"""Declarative chatbot flows: `chatbots/<bot>/flow.yaml`, compiled once (format: docs/chatbot.md).

A flow is a small state machine. Each node lists `rules` (not `on`: YAML 1.1 reads that as
`true`); a rule has one trigger (postback exact / prefix / pattern with named captures, text
keywords or pattern, an event kind, or `any`) and actions run in order: `let` names for this
turn only, `set` context values (kept in the conversation), `reply` with card templates or
text, `goto` a node. Rules are tried in order: the node's `rules`, then the flow-wide `global`
rules; an unmatched event falls to the node's `fallback`, else the flow's `fallback`. Values
are Jinja expressions in the same sandbox card templates use, seeing `ctx` (conversation
context), `event`, `captures`, `vars` (static data), `now` and the rule's `let` names.

Flows are configuration written by people: every structural error names file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from renderer import PROFILES
from renderer.errors import Problem, TemplateInvalid
from renderer.fields import Field, SourceCompiler
from renderer.jsonpath import json_path
from renderer.sandbox import CardSandbox, make_environment
from renderer.yamlsrc import line_of, load_yaml, locate

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_REPLY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "template": {"type": "string", "pattern": NAME_RE.pattern},
        "data": {"type": ["object", "string"]},
        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
    },
    "oneOf": [
        {"required": ["template"], "not": {"required": ["text"]}},
        {"required": ["text"], "not": {"anyOf": [{"required": ["template"]}, {"required": ["data"]}]}},
    ],
}
_ACTIONS = {
    "let": {"type": "object"},
    "set": {"type": "object"},
    "reply": {"oneOf": [_REPLY, {"type": "array", "items": _REPLY, "minItems": 1, "maxItems": 4}]},
    "goto": {"type": "string"},
}
_MATCHER = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "exact": {"type": "string"},
                "prefix": {"type": "string", "minLength": 1},
                "pattern": {"type": "string", "minLength": 1},
            },
        },
    ]
}
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "postback": _MATCHER,
        "text": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["pattern"],
                    "properties": {"pattern": {"type": "string", "minLength": 1}},
                },
            ]
        },
        "kind": {"enum": ["text", "postback", "location", "file"]},
        "any": {"const": True},
        **_ACTIONS,
    },
}
_FALLBACK = {"type": "object", "additionalProperties": False, "properties": _ACTIONS}
FLOW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "start", "nodes"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 80},
        "chatbot": {"type": "string", "maxLength": 256},
        "signature": {"type": "string", "maxLength": 40},
        "profile": {"type": "string"},
        "session_ttl": {"type": "number", "minimum": 0},
        "start": {"type": "string"},
        "context": {"type": "object"},
        "vars": {"type": "object"},
        "error_reply": {"type": "string", "minLength": 1, "maxLength": 2000},
        "global": {"type": "array", "items": _RULE},
        "fallback": _FALLBACK,
        "nodes": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"rules": {"type": "array", "items": _RULE}, "fallback": _FALLBACK},
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(FLOW_SCHEMA)
TRIGGERS = ("postback", "text", "kind", "any")


def _plain(value: Any) -> Any:
    """Strip the YAML location wrappers so state and vars are plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


_DOTTED = re.compile(r"^\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*-?\}\}$")
_MISSING = object()


class _Lookup:
    """`{{ a.b.c }}` over plain data, without running Jinja: most flow values are just that.

    Only dict keys are followed (data from YAML/JSON is plain dicts, lists, strings, numbers);
    anything else — an attribute, a missing key, a non-dict — falls back to the full Field,
    which gives the exact sandboxed result or error (StrictUndefined, file:line)."""

    __slots__ = ("field", "names")

    def __init__(self, field: Field, names: tuple[str, ...]) -> None:
        self.field = field
        self.names = names

    def evaluate(self, ctx: Any) -> Any:
        value = ctx.resolve_or_missing(self.names[0])
        for name in self.names[1:]:
            if type(value) is not dict:
                return self.field.evaluate(ctx)
            value = value.get(name, _MISSING)
        if value is _MISSING or type(value) not in _PLAIN:
            return self.field.evaluate(ctx)
        return value


_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _as_data(value: Any, field: Field) -> Any:
    """A flow value as the JSON data it is kept and sent as: Markup (|e, |tojson) becomes its
    text, tuples lists; anything else a template can make (a function, a namespace, a range)
    is the flow's mistake, reported at its file:line rather than failing when stored."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _as_data(v, field) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_data(v, field) for v in value]
    if isinstance(value, int | float):
        return value
    kind = type(value).__name__
    raise field.error(f"the value is a {kind}, not data (text, a number, a list or a mapping)")


class Value:
    """A compiled value tree: Fields at the string leaves, evaluated against one Jinja context."""

    __slots__ = ("_tree",)

    def __init__(self, env: CardSandbox, raw: Any, file: str, path: str) -> None:
        self._tree = self._compile(env, raw, file, path)

    def _compile(self, env: CardSandbox, raw: Any, file: str, path: str) -> Any:
        if isinstance(raw, dict):
            return {str(k): self._compile(env, v, file, f"{path}.{k}") for k, v in raw.items()}
        if isinstance(raw, list):
            return [self._compile(env, v, file, f"{path}[{i}]") for i, v in enumerate(raw)]
        if isinstance(raw, str):
            f = Field(env, raw, file, path)
            if f.is_const:
                return str(raw)
            m = _DOTTED.match(raw.strip())
            if m and m.group(1).split(".")[0] not in ("range", "loop", "self"):
                return _Lookup(f, tuple(m.group(1).split(".")))
            return f
        return raw

    def evaluate(self, ctx: Any) -> Any:
        return self._eval(self._tree, ctx)

    def _eval(self, node: Any, ctx: Any) -> Any:
        if isinstance(node, _Lookup):
            return node.evaluate(ctx)
        if isinstance(node, Field):
            value = node.evaluate(ctx)
            return value if type(value) in _SCALARS else _as_data(value, node)
        if isinstance(node, dict):
            return {k: self._eval(v, ctx) for k, v in node.items()}
        if isinstance(node, list):
            return [self._eval(v, ctx) for v in node]
        return node


@dataclass(frozen=True, slots=True)
class Reply:
    template: str | None
    data: Value | None
    text: Field | None
    line: int


RESERVED = frozenset({"ctx", "event", "captures", "vars", "now", "result"})


@dataclass(frozen=True, slots=True)
class Actions:
    lets: tuple[tuple[str, Value], ...] = ()  # this turn's local names (not stored)
    sets: tuple[tuple[str, Field | Value], ...] = ()
    replies: tuple[Reply, ...] = ()
    goto: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    trigger: str  # "postback" | "text" | "kind" | "any"
    mode: str  # exact | prefix | pattern | keywords | kind | any
    value: Any  # str, compiled regex, tuple of keywords, kind name
    actions: Actions
    line: int

    def match(self, kind: str, text: str, postback: str) -> dict[str, str] | None:
        """Named captures (empty dict for a capture-less match) or None."""
        if self.trigger == "any":
            return {}
        if self.trigger == "kind":
            return {} if kind == self.value else None
        if self.trigger == "postback":
            if kind != "postback":
                return None
            subject = postback
        else:
            if kind != "text":
                return None
            subject = text.strip()
        if self.mode == "exact":
            return {} if subject == self.value else None
        if self.mode == "prefix":
            return {"rest": subject[len(self.value) :]} if subject.startswith(self.value) else None
        if self.mode == "keywords":
            low = subject.lower()
            return {"keyword": k} if (k := next((k for k in self.value if k in low), None)) else None
        m = self.value.fullmatch(subject)
        if m is None:
            return None
        caps = {k: v for k, v in m.groupdict().items() if v is not None}
        caps.update({str(i): g for i, g in enumerate(m.groups(), 1) if g is not None})
        return caps


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    rules: tuple[Rule, ...]
    fallback: Actions | None


@dataclass(slots=True)
class Flow:
    bot: str
    title: str
    file: str
    start: str
    nodes: dict[str, Node]
    global_rules: tuple[Rule, ...]
    fallback: Actions | None
    context: dict[str, Any]
    vars: dict[str, Any]
    session_ttl: float
    chatbot: str
    signature: str
    profile: str | None
    error_reply: str
    env: CardSandbox = field(repr=False)

    def new_context(self, values: dict[str, Any]) -> Any:
        """A Jinja context over the turn's names (the renderer's cheap context, globals merged)."""
        return self.env.root_context(values)


class _Compiler(SourceCompiler):
    def actions(self, src: Any, path: str) -> Actions:
        lets: list[tuple[str, Value]] = []
        for key, raw in (src.get("let") or {}).items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(key)) or key in RESERVED:
                raise self.fail(
                    src["let"],
                    f"{path}.let",
                    f"「{key}」不能用作名字（要是字母、数字、下划线组成的标识符，"
                    f"且不是 {'、'.join(sorted(RESERVED))} 之一）",
                )
            lets.append((str(key), Value(self.env, raw, self.file, f"{path}.let.{key}")))
        sets: list[tuple[str, Field | Value]] = []
        for key, raw in (src.get("set") or {}).items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(key)):
                raise self.fail(
                    src["set"], f"{path}.set", f"上下文名「{key}」不是标识符（字母、数字、下划线）"
                )
            sets.append((str(key), Value(self.env, raw, self.file, f"{path}.set.{key}")))
        replies = []
        raw_replies = src.get("reply")
        if isinstance(raw_replies, dict):
            raw_replies = [raw_replies]
        for i, r in enumerate(raw_replies or []):
            rp = f"{path}.reply[{i}]"
            data = None
            if "data" in r:
                data = Value(self.env, r["data"], self.file, f"{rp}.data")
            text = Field(self.env, r["text"], self.file, f"{rp}.text") if "text" in r else None
            replies.append(Reply(r.get("template"), data, text, line_of(r, 1)))
        goto = src.get("goto")
        return Actions(tuple(lets), tuple(sets), tuple(replies), str(goto) if goto is not None else None)

    def rule(self, src: Any, path: str) -> Rule:
        present = [t for t in TRIGGERS if t in src]
        if len(present) != 1:
            raise self.fail(
                src,
                path,
                f"一条规则要有且只有一个触发条件（{'、'.join(TRIGGERS)}），"
                f"这里有 {'、'.join(present) or '0 个'}",
            )
        trig = present[0]
        raw = src[trig]
        mode, value = trig, raw
        if trig == "postback":
            if isinstance(raw, str):
                mode, value = "exact", str(raw)
            else:
                mode, value = next(iter(raw.items()))
                value = str(value)
        elif trig == "text":
            if isinstance(raw, dict):
                mode, value = "pattern", str(raw["pattern"])
            else:
                mode = "keywords"
                value = tuple(str(k).lower() for k in ([raw] if isinstance(raw, str) else raw))
        elif trig == "kind":
            value = str(raw)
        if mode == "pattern":
            try:
                value = re.compile(value)
            except re.error as exc:
                raise self.fail(raw, f"{path}.{trig}", f"正则表达式不对：{exc}") from None
        return Rule(trig, mode, value, self.actions(src, path), line_of(src, 1))


def _hint(message: str) -> str:
    if "'True' was unexpected" in message or "'False' was unexpected" in message:
        return message + " — YAML 1.1 reads a bare on/off/yes/no key as a boolean: write `rules:`"
    return message


def load_flow(path: Path, display: str | None = None) -> Flow:
    """Compile one flow file; TemplateInvalid with file:line for every mistake found."""
    bot = path.parent.name
    file = display or f"chatbots/{bot}/{path.name}"
    if not NAME_RE.match(bot):
        raise TemplateInvalid(
            f"{file}: bot folder name {bot!r} must match {NAME_RE.pattern}",
            [Problem("$", f"机器人文件夹名「{bot}」不符合 {NAME_RE.pattern}", file)],
        )
    src = load_yaml(path, file)
    problems = [
        Problem(json_path(e.path), _hint(e.message[:240]), file, locate(src, e.path))
        for e in sorted(_VALIDATOR.iter_errors(src), key=lambda e: list(map(str, e.path)))
    ]
    if problems:
        raise TemplateInvalid(f"{file}: flow is invalid ({len(problems)} problem(s))", problems)
    env = make_environment()
    c = _Compiler(env, file)
    nodes: dict[str, Node] = {}
    for name, nsrc in src["nodes"].items():
        rules = tuple(c.rule(r, f"$.nodes.{name}.rules[{i}]") for i, r in enumerate(nsrc.get("rules") or []))
        fb = c.actions(nsrc["fallback"], f"$.nodes.{name}.fallback") if "fallback" in nsrc else None
        nodes[str(name)] = Node(str(name), rules, fb)
    global_rules = tuple(c.rule(r, f"$.global[{i}]") for i, r in enumerate(src.get("global") or []))
    fallback = c.actions(src["fallback"], "$.fallback") if "fallback" in src else None
    flow = Flow(
        bot=bot,
        title=str(src["title"]),
        file=file,
        start=str(src["start"]),
        nodes=nodes,
        global_rules=global_rules,
        fallback=fallback,
        context=_plain(src.get("context") or {}),
        vars=_plain(src.get("vars") or {}),
        session_ttl=float(src.get("session_ttl", 1800)),
        chatbot=str(src.get("chatbot", "")),
        signature=str(src.get("signature", "")),
        profile=str(src["profile"]) if "profile" in src else None,
        error_reply=str(src.get("error_reply", "系统繁忙，请稍后再试。")),
        env=env,
    )
    _check_targets(flow, src, c)
    if flow.profile is not None and flow.profile not in PROFILES:
        raise c.fail(
            src["profile"],
            "$.profile",
            f"没有运营商配置「{flow.profile}」（可选：{'、'.join(sorted(PROFILES))}）",
        )
    return flow


def _check_targets(flow: Flow, src: Any, c: _Compiler) -> None:
    if flow.start not in flow.nodes:
        raise c.fail(src["start"], "$.start", f"起始节点「{flow.start}」没有在 nodes 里定义")

    def each() -> Any:
        for n in flow.nodes.values():
            for i, r in enumerate(n.rules):
                yield f"$.nodes.{n.name}.rules[{i}]", r.actions, r.line
            if n.fallback:
                yield f"$.nodes.{n.name}.fallback", n.fallback, 0
        for i, r in enumerate(flow.global_rules):
            yield f"$.global[{i}]", r.actions, r.line
        if flow.fallback:
            yield "$.fallback", flow.fallback, 0

    for path, actions, line in each():
        if actions.goto is not None and actions.goto not in flow.nodes:
            msg = f"goto 的节点「{actions.goto}」不存在（有：{'、'.join(flow.nodes)}）"
            raise TemplateInvalid.at(flow.file, line, f"{path}.goto", msg)


class FlowStore:
    """All flows under one folder, keyed by bot (folder) name; loaded eagerly at start.
    `shown_as`: how to name the folder in messages (as the user typed it), when not
    `chatbots/`."""

    def __init__(self, root: Path, shown_as: str | None = None) -> None:
        self.root = root
        self.flows: dict[str, Flow] = {}
        self.errors: dict[str, TemplateInvalid] = {}
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                f = folder / "flow.yaml"
                if f.is_file():
                    display = f"{shown_as}/{folder.name}/flow.yaml" if shown_as else None
                    try:
                        self.flows[folder.name] = load_flow(f, display)
                    except TemplateInvalid as exc:
                        self.errors[folder.name] = exc

    def get(self, bot: str) -> Flow | None:
        return self.flows.get(bot)


def flow_problems(store: FlowStore, templates: Any) -> list[tuple[bool, Problem]]:
    """(names a missing template?, problem) for every flow of `store`: load errors, and replies
    naming templates that do not exist. `templates` is a renderer.TemplateStore."""
    out: list[tuple[bool, Problem]] = []
    for err in store.errors.values():
        out.extend((False, p) for p in err.problems)
    known = set(templates.names())
    for flow in store.flows.values():
        rules = [r.actions for n in flow.nodes.values() for r in n.rules]
        rules += [n.fallback for n in flow.nodes.values() if n.fallback]
        rules += [r.actions for r in flow.global_rules] + ([flow.fallback] if flow.fallback else [])
        for actions in rules:
            for reply in actions.replies:
                if reply.template is not None and reply.template not in known:
                    said = f"回复用的模板「{reply.template}」不存在"
                    out.append((True, Problem("", said, flow.file, reply.line)))
    return out


def check_flows(root: Path, templates: Any) -> list[str]:
    """Lint lines (`file:line: path: message`) for every flow under `root`."""
    return [
        f"{p.location()}: {p.path + ': ' if p.path else ''}{p.message}"
        for _, p in flow_problems(FlowStore(root), templates)
    ]
