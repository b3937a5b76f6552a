"""Template folders on disk: load, validate, compile, cache, and reload when files change.

A template is a folder `card_templates/<name>/` holding:
  manifest.yaml  name, title, description, phase, brand, optional legacy text overrides
  schema.json    JSON Schema (2020-12) of the data the card takes
  sample.json    realistic sample data (must validate against schema.json)
  card.yaml      the card or carousel, with Jinja2 expressions in field values
See docs/templates.md for the full format.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

from .cardbind import compile_card_binder
from .cardspec import CardSpec, compile_card_spec
from .errors import DataInvalid, Problem, TemplateInvalid, TemplateNotFound
from .fields import Field
from .jsonpath import json_path
from .model import PHASES, Brand, Message
from .sandbox import CardSandbox, make_environment
from .schema_text import field_schema, field_title, violation_text
from .yamlsrc import LocDict, line_of, load_yaml, locate

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REQUIRED_FILES = ("manifest.yaml", "schema.json", "sample.json", "card.yaml")
MAX_JSON_BYTES = 256 * 1024
LEGACY_CHANNELS = ("ussd", "flash", "sms")

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "manifest.yaml",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "title", "description", "phase", "brand"],
    "properties": {
        "name": {"type": "string", "title": "模板名（name）", "pattern": NAME_RE.pattern},
        "title": {"type": "string", "title": "标题（title）", "minLength": 1, "maxLength": 80},
        "description": {"type": "string", "title": "说明（description）", "minLength": 1, "maxLength": 500},
        "phase": {"title": "阶段（phase）", "enum": list(PHASES)},
        "version": {"title": "版本（version）", "type": ["string", "number"]},
        "tags": {
            "title": "标签（tags）",
            "type": "array",
            "items": {"type": "string", "maxLength": 32},
            "maxItems": 16,
        },
        "brand": {
            "title": "品牌（brand）",
            "type": "object",
            "additionalProperties": False,
            "required": ["signature", "name"],
            "properties": {
                "signature": {
                    "type": "string",
                    "title": "签名（brand.signature）",
                    "minLength": 1,
                    "maxLength": 40,
                },
                "name": {"type": "string", "title": "品牌名（brand.name）", "minLength": 1, "maxLength": 80},
                "color": {"type": "string", "title": "品牌色（brand.color）", "pattern": "^#[0-9A-Fa-f]{6}$"},
                "logo": {
                    "type": "string",
                    "title": "标志（brand.logo）",
                    "pattern": r"^[A-Za-z0-9_./-]{1,128}$",
                },
            },
        },
        "legacy": {
            "title": "老手机文本（legacy）",
            "type": "object",
            "additionalProperties": False,
            "properties": {ch: {"type": "string", "maxLength": 2000} for ch in LEGACY_CHANNELS},
        },
    },
}
_MANIFEST_VALIDATOR = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    title: str
    description: str
    phase: str
    brand: dict[str, str]
    version: str
    tags: tuple[str, ...]
    legacy: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "phase": self.phase,
            "version": self.version,
            "tags": list(self.tags),
            "brand": dict(self.brand),
            "legacy": dict(self.legacy),
        }


class CardTemplate:
    """One loaded, compiled template. Immutable once built; reloading builds a new one."""

    def __init__(
        self, folder: Path, display_root: Path, env: CardSandbox, shown_as: str | None = None
    ) -> None:
        self.folder = folder
        self.name = folder.name
        rel = shown_as or _display(folder, display_root)  # how messages name the folder
        self.files: dict[str, str] = {f: f"{rel}/{f}" for f in REQUIRED_FILES}
        for f in REQUIRED_FILES:
            if not (folder / f).is_file():
                raise TemplateInvalid(
                    f"{self.files[f]}: missing (a template needs {', '.join(REQUIRED_FILES)})",
                    [Problem("", f"缺少这个文件（模板需要 {'、'.join(REQUIRED_FILES)}）", self.files[f])],
                )
        self.manifest = self._load_manifest()
        self.schema = _load_json(folder / "schema.json", self.files["schema.json"])
        self.sample = _load_json(folder / "sample.json", self.files["sample.json"])
        self._check_schema()
        self._validator = jsonschema_rs.Draft202012Validator(self.schema, validate_formats=True, offline=True)
        card_src = load_yaml(folder / "card.yaml", self.files["card.yaml"])
        self.spec: CardSpec = compile_card_spec(env, card_src, self.files["card.yaml"])
        mfile = self.files["manifest.yaml"]
        brand = self.manifest.brand
        self._brand_sig = Field(env, self._manifest_src["brand"]["signature"], mfile, "brand.signature")
        self._brand_name = Field(env, self._manifest_src["brand"]["name"], mfile, "brand.name")
        self._brand_static = (brand.get("color", "#1F6FEB"), brand.get("logo"))
        # Usually both are plain text: the brand is then built once (the model is never changed).
        self._brand: Brand | None = None
        if all(f.is_const and f.value not in (None, "") for f in (self._brand_sig, self._brand_name)):
            self._brand = Brand(
                signature=_required_text(self._brand_sig, None),
                name=_required_text(self._brand_name, None),
                color=self._brand_static[0],
                logo=self._brand_static[1],
            )
        legacy_src = self._manifest_src.get("legacy") or {}
        self._legacy = {
            ch: Field(env, legacy_src[ch], mfile, f"legacy.{ch}")
            for ch in LEGACY_CHANNELS
            if ch in legacy_src
        }
        self._env = env
        self._fast = all(
            f.has_fast_path
            for f in (*self.spec.fields(), self._brand_sig, self._brand_name, *self._legacy.values())
        )
        self._cardbind = compile_card_binder(env, self.spec) if self._fast else None
        self.version = self._digest()

    # -- loading ---------------------------------------------------------------------------
    def _load_manifest(self) -> Manifest:
        file = self.files["manifest.yaml"]
        src = load_yaml(self.folder / "manifest.yaml", file)
        self._manifest_src: LocDict = src
        problems = []
        for err in sorted(_MANIFEST_VALIDATOR.iter_errors(src), key=lambda e: list(e.path)):
            problems.append(_manifest_problem(err, src, file))
        if problems:
            raise TemplateInvalid(f"{file}: manifest is invalid", problems)
        if src["name"] != self.name:
            raise TemplateInvalid(
                f"{file}: name {src['name']!r} must match the folder name {self.name!r}",
                [Problem("$.name", f"要和文件夹名「{self.name}」一样", file, line_of(src["name"], 1))],
            )
        return Manifest(
            name=str(src["name"]),
            title=str(src["title"]),
            description=str(src["description"]),
            phase=str(src["phase"]),
            brand={k: str(v) for k, v in src["brand"].items()},
            version=str(src.get("version", "1")),
            tags=tuple(str(t) for t in src.get("tags", ())),
            legacy={k: str(v) for k, v in (src.get("legacy") or {}).items()},
        )

    def _check_schema(self) -> None:
        file = self.files["schema.json"]
        try:
            jsonschema.Draft202012Validator.check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise TemplateInvalid(
                f"{file}: not a valid 2020-12 JSON Schema at {json_path(exc.path)}: {exc.message}",
                [Problem(json_path(exc.path), exc.message, file)],
            ) from None
        if self.schema.get("type") != "object":
            raise TemplateInvalid(
                f'{file}: the data schema must have "type": "object"',
                [Problem("$.type", '数据定义的最外层要是 "object"', file)],
            )

    def _digest(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.folder.iterdir()):
            if path.is_file():
                h.update(path.name.encode())
                h.update(b"\0")
                h.update(path.read_bytes())
        return h.hexdigest()[:16]

    # -- rendering -------------------------------------------------------------------------
    def validate_data(self, data: Any) -> None:
        """Raise DataInvalid listing every schema violation with its JSON path."""
        if self._validator.is_valid(data):
            return
        problems = [_data_problem(e, self.schema) for e in self._validator.iter_errors(data)]
        problems.sort(key=lambda p: p.path)
        raise DataInvalid(
            f"data does not match the schema of template {self.name!r} "
            f"({len(problems)} problem{'s' if len(problems) != 1 else ''})",
            problems,
        )

    def bind(self, data: dict[str, Any]) -> Message:
        """Validated data → the card model. Template errors carry file:line.

        When every field of the template is simple (fastbind.py), the data dict itself is the
        scope and no Jinja runs; anything unexpected there (a missing key, a method, a type the
        fast path does not handle, an error) binds again through the sandbox, which gives the
        same values and is the only one that reports errors."""
        if self._fast and type(data) is dict:
            try:
                return self._bind(data)
            except Exception:  # the sandboxed path below decides
                pass
        return self._bind(self._env.root_context(data))

    def _bind(self, ctx: Any) -> Message:
        spec = self.spec
        if self._cardbind is not None and type(ctx) is dict:
            cards, chips = self._cardbind(ctx)
        else:
            cards = spec.bind_cards(ctx)
            chips = spec.bind_chips(ctx)
        brand = self._brand or Brand(
            signature=_required_text(self._brand_sig, ctx),
            name=_required_text(self._brand_name, ctx),
            color=self._brand_static[0],
            logo=self._brand_static[1],
        )
        legacy = {}
        for ch, field in self._legacy.items():
            value = field.evaluate(ctx)
            if value not in (None, ""):
                legacy[ch] = str(value)
        kwargs: dict[str, Any] = {}
        if spec.orientation is not None:
            kwargs["orientation"] = _required_text(spec.orientation, ctx)
        if spec.image_alignment is not None:
            kwargs["image_alignment"] = _required_text(spec.image_alignment, ctx)
        if spec.card_width is not None:
            kwargs["card_width"] = _required_text(spec.card_width, ctx)
        return Message(
            kind=spec.kind,  # type: ignore[arg-type]
            cards=cards,
            brand=brand,
            template=self.name,
            phase=self.manifest.phase,  # type: ignore[arg-type]
            chips=chips,
            legacy_overrides=legacy,
            **kwargs,
        )

    def render(self, data: Any) -> Message:
        if not isinstance(data, dict):
            problem = Problem("$", "数据须为一个 JSON 对象", code="type")
            raise DataInvalid("data must be a JSON object", [problem])
        self.validate_data(data)
        return self.bind(data)

    def manifest_line(self, *path: str) -> int:
        """Line in manifest.yaml of the value at `path` (e.g. "legacy", "flash"); 1 if unknown."""
        return locate(self._manifest_src, list(path))

    def describe(self) -> dict[str, Any]:
        return {
            **self.manifest.to_json(),
            "templateVersion": self.version,
            "kind": self.spec.kind,
            "dataSchema": self.schema,
            "sampleData": self.sample,
        }


MAX_MESSAGE = 240  # error messages quote the offending value; a 10 MB string must not be echoed back


def _data_problem(err: Any, schema: dict[str, Any]) -> Problem:
    """One schema violation as a Problem whose path points at the field itself (a missing
    required property is reported at `$.parent.prop`, not at `$.parent`), with a Chinese
    sentence naming the field by its title (renderer/schema_text.py) and the keyword as code."""
    path = list(err.instance_path)
    kind = err.kind
    name = kind.name
    detail = {k: v for k, v in kind.as_dict().items() if k not in ("value", "instance")}
    if name == "required":
        path.append(kind.property)
    message = violation_text(name, detail, field_title(schema, path), field_schema(schema, path))
    return Problem(json_path(path), message[:MAX_MESSAGE], code=name)


_REQUIRED = re.compile(r"^'(?P<key>[^']+)' is a required property$")


def _manifest_problem(err: jsonschema.ValidationError, src: Any, file: str) -> Problem:
    """A manifest.yaml violation as a Chinese sentence naming the field (the manifest schema's
    titles), the keyword as code and jsonschema's words as detail."""
    path: list[str | int] = list(err.path)
    code = str(err.validator)
    value = err.validator_value
    detail: dict[str, Any] = {"limit": value, "pattern": value, "options": value, "format": value}
    detail["types"] = value if isinstance(value, list) else [value]
    if code == "required" and (m := _REQUIRED.match(err.message)):
        path.append(m["key"])
    if code == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        detail["unexpected"] = [k for k in err.instance if k not in known]
    title = field_title(MANIFEST_SCHEMA, path)
    message = violation_text(code, detail, title, field_schema(MANIFEST_SCHEMA, path))
    return Problem(json_path(path), message, file, locate(src, err.path), code=code, detail=err.message)


def _required_text(field: Field, ctx: Any) -> str:
    value = field.evaluate(ctx)
    if value in (None, ""):
        raise field.error("值是空的")
    return str(value)


def _display(folder: Path, root: Path) -> str:
    try:
        return str(folder.relative_to(root))
    except ValueError:
        return str(folder)


def _load_json(path: Path, display: str) -> Any:
    raw = path.read_bytes()
    if len(raw) > MAX_JSON_BYTES:
        raise TemplateInvalid(
            f"{display}: larger than {MAX_JSON_BYTES} bytes",
            [Problem("", f"文件太大（最多 {MAX_JSON_BYTES} 字节）", display, 1)],
        )
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TemplateInvalid(f"{display}: not UTF-8", [Problem("", "不是 UTF-8 文本", display, 1)]) from None
    except json.JSONDecodeError as exc:
        raise TemplateInvalid(
            f"{display}:{exc.lineno}: JSON syntax: {exc.msg}",
            [
                Problem(
                    "",
                    f"JSON 格式不对（第 {exc.colno} 列）",
                    display,
                    exc.lineno,
                    detail=f"JSON syntax: {exc.msg}",
                )
            ],
        ) from None
    except RecursionError:
        raise TemplateInvalid(
            f"{display}: nested too deeply", [Problem("", "嵌套太深", display, 1)]
        ) from None


@dataclass(slots=True)
class _Entry:
    template: CardTemplate | None
    error: TemplateInvalid | None
    stamp: tuple[tuple[str, int, int], ...]
    checked: float


class TemplateStore:
    """All templates under one root folder; compiled lazily, re-checked at most every
    `reload_interval` seconds, recompiled when any file in the folder changes. Messages name a
    template's files under `shown_as` when given (the folder as a user typed it, so the path
    opens from their current folder), else relative to the root's parent."""

    def __init__(self, root: Path, reload_interval: float = 0.25, shown_as: str | None = None) -> None:
        self.root = root
        self.shown_as = shown_as
        self.reload_interval = reload_interval
        self.env = make_environment()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and NAME_RE.match(p.name) and (p / "manifest.yaml").is_file()
        )

    def folder(self, name: str) -> Path:
        if not NAME_RE.match(name):
            raise TemplateNotFound(
                f"no template named {name!r}",
                [Problem("name", "不是有效的模板名（小写字母、数字、连字符和下划线）")],
            )
        folder = self.root / name
        if not (folder / "manifest.yaml").is_file():
            raise TemplateNotFound(
                f"no template named {name!r}", [Problem("name", f"没有名为「{name}」的模板")]
            )
        return folder

    def get(self, name: str) -> CardTemplate:
        """The compiled template; raises TemplateNotFound or TemplateInvalid."""
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None and now - entry.checked < self.reload_interval:
            return _unwrap(entry)
        folder = self.folder(name)
        stamp = _stamp(folder)
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.stamp != stamp:
                try:
                    shown = f"{self.shown_as}/{name}" if self.shown_as else None
                    built = CardTemplate(folder, self.root.parent, self.env, shown)
                    entry = _Entry(built, None, stamp, now)
                except TemplateInvalid as exc:
                    entry = _Entry(None, exc, stamp, now)
                self._entries[name] = entry
            else:
                entry.checked = now
        return _unwrap(entry)

    def refresh(self, name: str) -> CardTemplate:
        """`get`, re-checking the folder now whatever `reload_interval` says: for a watcher that
        has just seen a file change and wants the next `get` to serve the new build at once."""
        entry = self._entries.get(name)
        if entry is not None:
            entry.checked = float("-inf")
        return self.get(name)

    def stamp(self, name: str) -> tuple[tuple[str, int, int], ...]:
        """File names, mtimes and sizes of a template folder: changes when any file does."""
        return _stamp(self.folder(name))


def _unwrap(entry: _Entry) -> CardTemplate:
    if entry.error is not None:
        raise entry.error
    assert entry.template is not None
    return entry.template


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in folder.iterdir():
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append((p.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))
