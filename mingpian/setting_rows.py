"""What one setting is: its row (name, type, default, allowed values, help), the `setting()`
helper that declares a `Settings` field with its row, and the parsers of compound values.
mingpian/settings.py declares the settings themselves with these."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from delivery.chain import DEFAULT_TIMEOUTS
from delivery.model import CHANNELS as DELIVERY_CHANNELS

ENV_PREFIX = "MINGPIAN_"
MASK = "********"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
KANNEL_CHANNELS = ("flash", "sms")


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
    **row: Any,
) -> Any:
    """A dataclass field carrying its `Setting` row (name and type are filled in from the field)."""
    spec = Setting(name="", type=None, default=None, help=help, **row)
    if factory is not None:  # mutable defaults (dicts): also kept out of the hash
        return field(default_factory=factory, hash=False, metadata={"setting": spec})
    return field(default=default, metadata={"setting": spec})


def parse_timeouts(value: Any) -> dict[str, float]:
    """`ussd=5,flash=30` (or a TOML table): channels not named keep their default."""
    pairs: list[tuple[Any, Any]]
    if isinstance(value, str):
        pairs = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, eq, seconds = part.partition("=")
            if not eq:
                raise SettingError(f"{part!r} is not channel=seconds; expected {TIMEOUTS_ALLOWED}")
            pairs.append((name.strip(), seconds.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise SettingError(f"expected {TIMEOUTS_ALLOWED}")
    out = dict(DEFAULT_TIMEOUTS)
    for name, seconds in pairs:
        if name not in DELIVERY_CHANNELS:
            raise SettingError(f"unknown channel {name!r}; expected {TIMEOUTS_ALLOWED}")
        try:
            number = float(seconds) if isinstance(seconds, str | int | float) else math.nan
        except ValueError:
            number = math.nan
        if isinstance(seconds, bool) or not (math.isfinite(number) and number > 0):
            raise SettingError(f"{name}: {seconds!r} is not a number of seconds > 0")
        out[name] = number
    return out


TIMEOUTS_ALLOWED = "channel=seconds, comma-separated (channels rcs, ussd, flash, sms; seconds > 0)"


def parse_kannel_channels(value: Any) -> tuple[str, ...]:
    """`flash,sms` (or a TOML array): which legacy channels go through Kannel."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingError(f"expected {KANNEL_ALLOWED}")
    names = tuple(dict.fromkeys(i.strip().lower() for i in items if i.strip()))
    for name in names:
        if name not in KANNEL_CHANNELS:
            raise SettingError(f"unknown channel {name!r}; expected {KANNEL_ALLOWED}")
    return names


KANNEL_ALLOWED = "flash, sms or both, comma-separated"


def _names(value: Any, allowed_doc: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingError(f"expected {allowed_doc}")
    return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))


def parse_webhook_schemes(value: Any) -> tuple[str, ...]:
    """`csp-signature,hmac-sha256` (or a TOML array): the auth schemes one dialect's routes take."""
    names = tuple(n.lower() for n in _names(value, SCHEMES_ALLOWED))
    for name in names:
        if name not in WEBHOOK_SCHEMES:
            raise SettingError(f"unknown scheme {name!r}; expected {SCHEMES_ALLOWED}")
    return names


WEBHOOK_SCHEMES = ("csp-signature", "username-password", "bearer", "hmac-sha256")
SCHEMES_ALLOWED = "comma-separated of " + ", ".join(WEBHOOK_SCHEMES) + " (empty: the route is closed)"


def parse_networks(value: Any, allowed: str = "") -> tuple[str, ...]:
    """`10.0.0.0/8,2001:db8::/32` (or a TOML array): source networks; empty allows any."""
    allowed = allowed or NETWORKS_ALLOWED
    out = []
    for name in _names(value, allowed):
        try:
            out.append(str(ipaddress.ip_network(name, strict=False)))
        except ValueError:
            raise SettingError(f"{name!r} is not a network; expected {allowed}") from None
    return tuple(out)


NETWORKS_ALLOWED = "IPv4/IPv6 networks (CIDR) or addresses, comma-separated; empty: any source"


def parse_proxies(value: Any) -> tuple[str, ...]:
    """The reverse proxies whose `X-Forwarded-For` is believed (mingpian/clientaddr.py)."""
    return parse_networks(value, PROXIES_ALLOWED)


PROXIES_ALLOWED = "IPv4/IPv6 networks (CIDR) or addresses, comma-separated; empty: none"


def parse_host_port(value: Any) -> str:
    """`host:port` or empty; checked here so a typo is not a traceback at start."""
    if not isinstance(value, str):
        raise SettingError(f"expected {HOST_PORT_ALLOWED}")
    if value:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
            raise SettingError(f"expected {HOST_PORT_ALLOWED}")
    return value


HOST_PORT_ALLOWED = "host:port (port 1 to 65535), or empty"


def parse_sender(value: Any) -> str:
    """A sender the SMSC can carry: a service code (106…, up to 20 digits), an alphanumeric name
    of at most 11 ASCII characters, or empty; checked here so a typo is not a refused submit."""
    if not isinstance(value, str):
        raise SettingError(f"expected {SENDER_ALLOWED}")
    value = value.strip()
    if value and not (
        (value.isdigit() and len(value) <= 20) or (len(value) <= 11 and value.isascii() and value.isalnum())
    ):
        raise SettingError(f"expected {SENDER_ALLOWED}")
    return value


SENDER_ALLOWED = "a service code (digits, at most 20) or a name (letters and digits, at most 11), or empty"


def parse_database_url(value: Any) -> str:
    """Empty (SQLite files in data_dir) or a PostgreSQL URL."""
    if not isinstance(value, str) or (value and not value.startswith(("postgresql://", "postgres://"))):
        raise SettingError(f"expected {DATABASE_URL_ALLOWED}")
    return value


DATABASE_URL_ALLOWED = "empty, or postgresql://user:password@host:port/database"

MAAP_ACCOUNT_KEYS = {
    "chatbots": list,
    "url": str,
    "dialect": str,
    "app_id": str,
    "app_key": str,
    "token_url": str,
    "cm_secret": str,
    "file_server": str,
    "upload_mode": str,
    "profile": str,
}
MAAP_ACCOUNTS_ALLOWED = (
    "a JSON array (or TOML array of tables) of accounts, each with chatbots (a list), url, dialect "
    "(csp, cm or gsma), app_id, app_key and optionally token_url, cm_secret, file_server, "
    "upload_mode, profile; or empty"
)


def parse_maap_accounts(value: Any) -> str:
    """More MaaP accounts, each for the chatbots it names; kept as canonical JSON text."""
    import json

    if isinstance(value, str):
        if not value.strip():
            return ""
        try:
            value = json.loads(value)
        except ValueError:
            raise SettingError(f"not JSON; expected {MAAP_ACCOUNTS_ALLOWED}") from None
    if not isinstance(value, list):
        raise SettingError(f"expected {MAAP_ACCOUNTS_ALLOWED}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise SettingError(f"[{i}] is not a table; expected {MAAP_ACCOUNTS_ALLOWED}")
        for key, kind in MAAP_ACCOUNT_KEYS.items():
            if key in item and not isinstance(item[key], kind):
                raise SettingError(f"[{i}].{key} must be {'a list' if kind is list else 'text'}")
        unknown = set(item) - set(MAAP_ACCOUNT_KEYS)
        if unknown:
            raise SettingError(f"[{i}]: unknown key {sorted(unknown)[0]!r}; expected {MAAP_ACCOUNTS_ALLOWED}")
        for key in ("chatbots", "url", "app_id", "app_key"):
            if not item.get(key):
                raise SettingError(f"[{i}].{key} is required")
        if item.get("dialect", "csp") not in ("csp", "cm", "gsma"):
            raise SettingError(f"[{i}].dialect must be csp, cm or gsma")
        if item.get("cm_secret", "password") not in ("password", "token"):
            raise SettingError(f"[{i}].cm_secret must be password or token")
        if item.get("upload_mode", "perm") not in ("perm", "temp"):
            raise SettingError(f"[{i}].upload_mode must be perm or temp")
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""


_SECRET_WORDS = ("password", "secret", "token", "app_key", "operator_key", "database_url", "maap_accounts")


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS)
