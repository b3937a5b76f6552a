"""What one setting is, declared beside the config type that uses it.

A domain package (delivery, the chatbot) declares its settings as fields of its own config
dataclass with `setting(default, help, ...)`, which puts a `Setting` row (help, allowed values,
bounds, parser) into the field's metadata. The server composes its `Settings` from those rows
(`rows_of`) and builds the domain's config back from its values (`config_from`), so a setting is
declared once, next to the code that reads it, and the domain packages never import the server.
It lives in infra/ because it knows no domain and no server: only dataclass fields and values.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "MINGPIAN_"
MASK = "********"


class SettingError(ValueError):
    """A value a setting does not allow; the message says what is allowed."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: what it is called, what it holds, what it accepts and what it is for."""

    name: str
    type: Any  # int, float, str, Path, or a compound value's type (with `parse`)
    default: Any
    help: str
    choices: tuple[Any, ...] = ()  # closed set; strings match in any case
    minimum: float | None = None
    above: float | None = None  # exclusive lower bound
    maximum: float | None = None
    parse: Callable[[Any], Any] | None = None  # compound values: text or TOML value -> value
    allowed_doc: str = ""  # how the docs describe what `parse` accepts
    doc_default: str = ""  # the docs' default where the literal one says little

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def secret(self) -> bool:
        return is_secret(self.name)

    def allowed(self) -> str:
        """What the setting accepts, in words (error messages, docs)."""
        if self.allowed_doc:
            return self.allowed_doc
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        kind = {int: "an integer", float: "a number", Path: "a path", str: "text"}[self.type]
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.minimum is not None:
            return f"{kind} ≥ {_num(self.minimum)}"
        if self.above is not None:
            return f"{kind} > {_num(self.above)}"
        return kind

    def from_text(self, raw: str) -> Any:
        """The value of an environment variable (always text)."""
        if self.parse is not None or self.type in (str, Path):
            return self.check(raw)
        try:
            value: Any = self.type(raw.strip())
        except ValueError:
            raise SettingError(f"expected {self.allowed()}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """A typed value (config file, keyword argument) checked and normalised, or SettingError."""
        if self.parse is not None:
            return self.parse(value)
        if self.type is Path:
            if isinstance(value, str | Path):
                return Path(value).expanduser()
        elif self.type is str:
            if isinstance(value, str):
                return self._choose(value)
        elif self.type is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return self._bounded(float(value))
        elif self.type is int and isinstance(value, int) and not isinstance(value, bool):
            return self._bounded(value)
        raise SettingError(f"expected {self.allowed()}; got {_kind_of(value)}")

    def _choose(self, value: str) -> str:
        if not self.choices:
            return value
        for choice in self.choices:
            if choice.lower() == value.strip().lower():
                return str(choice)
        raise SettingError(f"expected {self.allowed()}")

    def _bounded(self, value: float) -> Any:
        ok = (
            math.isfinite(value)
            and (not self.choices or value in self.choices)
            and (self.minimum is None or value >= self.minimum)
            and (self.above is None or value > self.above)
            and (self.maximum is None or value <= self.maximum)
        )
        if not ok:
            raise SettingError(f"expected {self.allowed()}")
        return value

    def text(self, value: Any) -> str:
        """A value written the way its environment variable takes it."""
        if isinstance(value, Mapping):
            return ",".join(f"{k}={_num(v)}" for k, v in value.items())
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)

    def shown(self, value: Any) -> Any:
        return MASK if self.secret and value else value


def _kind_of(value: Any) -> str:
    """What a wrongly typed value is, in TOML's words (`port = "8081"` is text, not an integer)."""
    if isinstance(value, bool):
        return "a boolean"
    kinds = (
        (str, "text"),
        (int, "an integer"),
        (float, "a number"),
        (Mapping, "a table"),
        (list, "an array"),
    )
    return next((word for t, word in kinds if isinstance(value, t)), type(value).__name__)


def _num(x: float) -> str:
    return f"{x:g}"


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    name: str = "",
    **row: Any,
) -> Any:
    """A dataclass field carrying its `Setting` row. The type comes from the field; so does the
    name, with the prefix the server gives the class's rows, unless `name` sets it whole."""
    spec = Setting(name=name, type=None, default=None, help=help, **row)
    if factory is not None:  # mutable defaults (dicts): also kept out of the hash
        return field(default_factory=factory, hash=False, metadata={"setting": spec})
    return field(default=default, metadata={"setting": spec})


def rows_of(cls: type, prefix: str = "") -> tuple[tuple[str, Setting], ...]:
    """(field name, complete row) of each field of `cls` declared with `setting()`, in order."""
    hints = get_type_hints(cls)
    out = []
    for f in fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        factory: Any = f.default_factory
        default = factory() if f.default is MISSING else f.default
        name = spec.name or prefix + f.name
        out.append((f.name, replace(spec, name=name, type=hints[f.name], default=default)))
    return tuple(out)


def config_from(cls: type, values: Any, prefix: str = "", **rest: Any) -> Any:
    """A `cls` whose setting fields are read from `values` (an object with an attribute per
    setting name) and whose other fields are `rest`."""
    own = {f: getattr(values, row.name) for f, row in rows_of(cls, prefix)}
    return cls(**own, **rest)


def names(value: Any, allowed_doc: str) -> tuple[str, ...]:
    """`a,b` (or a TOML array of text): the names, stripped, without repeats or empties."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingError(f"expected {allowed_doc}")
    return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))


NETWORKS_ALLOWED = "IPv4/IPv6 networks (CIDR) or addresses, comma-separated; empty: any source"


def parse_networks(value: Any, allowed: str = "") -> tuple[str, ...]:
    """`10.0.0.0/8,2001:db8::/32` (or a TOML array): source networks; empty allows any."""
    allowed = allowed or NETWORKS_ALLOWED
    out = []
    for name in names(value, allowed):
        try:
            out.append(str(ipaddress.ip_network(name, strict=False)))
        except ValueError:
            raise SettingError(f"{name!r} is not a network; expected {allowed}") from None
    return tuple(out)


_SECRET_WORDS = ("password", "secret", "token", "app_key", "operator_key", "database_url", "maap_accounts")


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS)
