"""Every setting as one row: name, type, default, allowed values and help, in one declaration.

Each field of the `Settings` dataclass is declared with `setting(default, help, ...)`, which puts a
`Setting` row into the field's metadata; the name and the type come from the field itself. This
was preferred over a separate table from which the dataclass is generated because the class stays
an ordinary, statically typed dataclass: `settings.port` is an `int` to readers, editors and type
checkers, and a setting cannot exist without its row (or the row without its field).

The rows are the single source of truth: `Settings.from_env()` reads and checks the values,
`mingpian settings` prints them, `markdown_table()` renders the table in docs/settings.md (and
tests/server/test_settings.py fails when the two differ). Features add their rows here rather than
reading os.environ themselves; a domain package declares its rows beside its own config type
(delivery/config.py, chatbot/settings.py, with infra/settingrow.py's `setting()`) and they are
placed here, among the server's own, by `_Rows`: in the order listed, under the names the
package gives (delivery's with the `delivery_` prefix).

Values come from, lowest first: the defaults, a TOML config file (`--config` or MINGPIAN_CONFIG),
MINGPIAN_* environment variables, explicit overrides (command-line flags). A bad value, an unknown
MINGPIAN_* variable or an unknown config key stops the program with one line naming where it came
from, the value and what is allowed (SystemExit, printed without a traceback).
"""

# setting() returns dataclasses.field(...), which RUF009 does not know of:
# ruff: noqa: RUF009

from __future__ import annotations

import difflib
import inspect
import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from chatbot.settings import ChatbotSettings
from delivery.config import DeliveryConfig
from infra.settingrow import ENV_PREFIX, Setting, SettingError, parse_networks, rows_of, setting
from renderer.profiles import PROFILES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "MINGPIAN_CONFIG"  # names the config file; not a setting itself


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PROXIES_ALLOWED = "IPv4/IPv6 networks (CIDR) or addresses, comma-separated; empty: none"


def parse_proxies(value: Any) -> tuple[str, ...]:
    """The reverse proxies whose `X-Forwarded-For` is believed (mingpian/clientaddr.py)."""
    return parse_networks(value, PROXIES_ALLOWED)


class _Rows:
    """Stands in the body of `Settings` for a domain's rows, there in the list: those of
    `config`'s fields from `start` up to (not including) `stop`, named with `prefix`."""

    def __init__(self, config: type, prefix: str = "", *, start: str = "", stop: str = "") -> None:
        self.config, self.prefix, self.start, self.stop = config, prefix, start, stop

    def fields(self) -> list[tuple[str, Any, Any]]:
        """(setting name, type, dataclass field carrying the row) of each row, in order."""
        declared = {f.name: f for f in fields(self.config)}
        rows = rows_of(self.config, self.prefix)
        order = [name for name, _ in rows]
        first = order.index(self.start) if self.start else 0
        end = order.index(self.stop) if self.stop else len(order)
        out = []
        for name, row in rows[first:end]:
            factory = declared[name].default_factory
            if factory is not MISSING:
                made = field(default_factory=factory, hash=False, metadata={"setting": row})
            else:
                made = field(default=declared[name].default, metadata={"setting": row})
            out.append((row.name, row.type, made))
        return out


def _compose(cls: type) -> type:
    """Each `_Rows` of the class body replaced, in place, by the fields of its rows."""
    own = inspect.get_annotations(cls)
    annotations: dict[str, Any] = {}
    for key, value in list(vars(cls).items()):
        if key in own:
            annotations[key] = own[key]
        elif isinstance(value, _Rows):
            delattr(cls, key)
            for name, kind, made in value.fields():
                annotations[name] = kind
                setattr(cls, name, made)
    if set(own) - set(annotations):  # a field without a default would lose its place
        raise TypeError(f"settings without a default: {sorted(set(own) - set(annotations))}")
    cls.__annotations__ = annotations
    return cls


@dataclass(frozen=True, slots=True)
@_compose
class Settings:
    host: str = setting("127.0.0.1", "Interface the HTTP server binds to.")
    port: int = setting(8080, "TCP port of the HTTP server.", minimum=0, maximum=65535)
    workers: int = setting(
        1,
        "Worker processes serving the port (gunicorn with aiohttp's worker; a dead one is replaced). "
        "More than 1 needs shared state: `database_url`, `store=redis`, `delivery_counters=redis`, "
        "`media_store=redis`.",
        minimum=1,
        maximum=256,
    )
    shutdown_timeout: float = setting(
        30.0, "Seconds a stopping worker lets in-flight requests finish before it exits.", minimum=0
    )
    template_dir: Path = setting(
        PROJECT_ROOT / "card_templates", "Folder holding one sub-folder per card template."
    )
    assets_dir: Path = setting(
        PROJECT_ROOT / "assets",
        "Shared assets (fonts, logos); nothing outside "
        "it or the template's folder is readable from a template.",
    )
    docs_dir: Path = setting(
        PROJECT_ROOT / "docs",
        "The Markdown docs served as pages at `/docs`: the guide in its `guide/` folder (the landing "
        "page), the reference and the `README.md` beside the folder.",
    )
    data_dir: Path = setting(
        PROJECT_ROOT / "var", "Local state (SQLite databases, media cache, metrics files). Created on start."
    )
    public_base_url: str = setting(
        "",
        "Base URL clients reach this server at, used in `mediaUrl`/`thumbnailUrl`.",
        doc_default="`http://HOST:PORT`",
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "Reverse proxies / load balancers in front of the server: when the TCP peer is one of them, "
        "the client is the right-most `X-Forwarded-For` address that is not (for the console's "
        "sign-in limit, the access log and the webhook source networks). Empty: the header is "
        "ignored and the peer is the client.",
        parse=parse_proxies,
        allowed_doc=PROXIES_ALLOWED,
    )
    max_body_bytes: int = setting(256 * 1024, "Largest request body accepted; larger gets 413.", minimum=1)
    max_json_depth: int = setting(
        32, "Deepest JSON nesting accepted in a request; deeper gets 400.", minimum=1
    )
    reload_interval: float = setting(
        0.25, "Seconds between checks of a template's files for changes.", minimum=0
    )
    default_profile: str = setting(
        "default", "Carrier profile (limits) used when a request names none.", choices=tuple(PROFILES)
    )
    log_format: str = setting(
        "auto",
        "`json` (one object per line), `text`, or `auto`: JSON, except on an interactive terminal, "
        "where warnings and errors are short Chinese lines (no line per request).",
        choices=("auto", "json", "text"),
    )
    log_level: str = setting("INFO", "Python logging level name.", choices=LOG_LEVELS)
    demo: str = setting(
        "auto",
        "`auto`: a server listening on loopback with nothing configured (no operator key, SMPP, "
        "Kannel, MaaP, card-SMS platform, seed or database) runs the demo: the simulated carrier "
        "network on loopback ports, a sample courier enterprise and an operator key printed at "
        "start (docs/console.md, Demo). `off`: never.",
        choices=("auto", "off"),
    )
    # -- media (mingpian/media/, renderer/image.py, renderer/video.py; docs/media.md) --
    media_workers: int = setting(
        2, "Worker processes rendering images and videos (off the event loop).", minimum=1
    )
    media_concurrency: int = setting(
        2, "Media renders running at once; more wait in a queue (bounds memory).", minimum=1
    )
    media_time_limit: float = setting(
        30.0,
        "Seconds one picture may take in a media worker; past it the worker is stopped and the "
        "request answered 422 `render_timeout`.",
        above=0,
    )
    media_video_time_limit: float = setting(
        300.0, "The same for one video (all its cards and encodes).", above=0
    )
    ffmpeg: str = setting("", "ffmpeg binary for videos; empty: the one in the imageio-ffmpeg wheel.")
    media_store: str = setting(
        "local",
        "Where media render specs and jobs live: `local` (specs beside the cached files, jobs in this "
        "process) or `redis` (also in Redis at `REDIS_URL`: every process and host serves every "
        "`/media/…` URL and answers every job).",
        choices=("local", "redis"),
    )
    media_cache_max_bytes: int = setting(
        2 * 1024**3,
        "Size the media cache is pruned to, least recently used first (a pruned file is made "
        "again on request); 0: no limit.",
        minimum=0,
    )
    media_cache_max_age: float = setting(
        7 * 86400.0, "Seconds a cached media file is kept after its last use; 0: no limit.", minimum=0
    )
    media_spec_max_age: float = setting(
        30 * 86400.0,
        "Seconds a render spec is kept after its file's last use: how long a `/media/…` URL can be "
        "made again once its file is pruned; 0: forever.",
        minimum=0,
    )
    media_prune_interval: float = setting(
        300.0, "Seconds between two prunes of the media cache; 0: never prune.", minimum=0
    )
    library_quota: int = setting(
        200 * 1024**2,
        "Bytes of media library files (logos, photos, videos) each enterprise may keep.",
        minimum=0,
    )
    library_max_bytes: int = setting(
        10 * 1024**2, "Largest media library upload, in bytes, as sent (before re-encoding).", minimum=1
    )
    library_max_pixels: int = setting(
        3840 * 2160,
        "Pixels a library picture or video frame is scaled down to at most (keeping its shape).",
        minimum=1024,
    )
    library_max_seconds: float = setting(60.0, "Longest media library video, in seconds.", above=0)
    library_fetch_timeout: float = setting(
        10.0, "Seconds a photo URL fetch (from an enterprise's `photo_hosts`) may take in all.", above=0
    )
    # -- chatbot (chatbot/, mingpian/api/chatbot.py; docs/chatbot.md) --
    chatbot_dir: Path = setting(
        PROJECT_ROOT / "chatbots", "Chatbot flows, one `<bot>/flow.yaml` per bot (docs/chatbot.md)."
    )
    _chatbot = _Rows(ChatbotSettings)  # store, redis_url, …, maap_*, webhook_*, …, outbox_lease
    studio_chat_sessions: int = setting(
        200,
        "Anonymous studio preview chats kept at once; the least recently used is forgotten "
        "(with its conversations) when full.",
        minimum=1,
    )
    studio_chat_ttl: float = setting(
        1800.0, "Seconds an unused studio preview chat is kept before it is forgotten.", above=0
    )
    # -- delivery (delivery/, mingpian/api/delivery/; docs/delivery.md) --
    _delivery = _Rows(DeliveryConfig, "delivery_", stop="kannel_token")  # database_url, delivery_*
    console_session_hours: float = setting(
        8.0,
        "Hours a console sign-in lasts (the session cookie's Max-Age); then the key is asked again.",
        above=0,
        maximum=24 * 30,
    )
    # (listed after console_session_hours since it was added)
    _delivery_token = _Rows(DeliveryConfig, "delivery_", start="kannel_token")

    def __post_init__(self) -> None:
        """Keyword construction is checked like the environment: a bad value never gets in."""
        for row in SETTINGS:
            value = getattr(self, row.name)
            try:
                object.__setattr__(self, row.name, row.check(value))
            except SettingError as exc:
                raise SettingError(f"{row.name}={row.shown(value)!r}: {exc}") from None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config: str | Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults, then the config file, then MINGPIAN_* variables, then explicit overrides.

        `config` (or else MINGPIAN_CONFIG) names the TOML file. Any bad value, unknown variable or
        unknown key raises SystemExit with one line saying where it came from and what is allowed.
        """
        env = os.environ if environ is None else environ
        path = config or env.get(CONFIG_ENV) or None
        values: dict[str, Any] = load_config(path) if path else {}
        values.update(_from_environ(env))
        for name, value in overrides.items():
            if value is None:
                continue
            row = SETTING_BY_NAME.get(name)
            if row is None:
                raise TypeError(f"Settings has no setting {name!r}")
            values[name] = _checked(row, value, f"{name}={row.shown(value)!r}")
        return cls(**values)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={self.shown(f.name)!r}" for f in fields(self))
        return f"Settings({shown})"

    def shown(self, name: str) -> Any:
        """The value for display: secrets (keys, passwords, tokens) are masked, never printed."""
        return SETTING_BY_NAME[name].shown(getattr(self, name))

    def shown_text(self, name: str) -> str:
        """The displayed value as its environment variable would take it (`mingpian settings`)."""
        return SETTING_BY_NAME[name].text(self.shown(name))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def base_url(self) -> str:
        """Where clients reach this server (for media URLs); derived from host:port if unset."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


def _rows() -> tuple[Setting, ...]:
    hints = get_type_hints(Settings)
    rows = []
    for f in fields(Settings):
        factory: Any = f.default_factory
        default = factory() if f.default is MISSING else f.default
        rows.append(replace(f.metadata["setting"], name=f.name, type=hints[f.name], default=default))
    return tuple(rows)


SETTINGS: tuple[Setting, ...] = _rows()
SETTING_BY_NAME: dict[str, Setting] = {row.name: row for row in SETTINGS}


def _checked(row: Setting, value: Any, where: str, text: bool = False) -> Any:
    try:
        return row.from_text(value) if text else row.check(value)
    except SettingError as exc:
        raise SystemExit(f"{where}: {exc}") from None


def _suggest(word: str, options: Mapping[str, str]) -> str:
    """`; did you mean X?` for the option (compared by key, shown as value) closest to `word`."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {options[close[0]]}?" if close else ""


def _from_environ(env: Mapping[str, str]) -> dict[str, Any]:
    """The MINGPIAN_* variables as values; one that names no setting is an error, not ignored."""
    values: dict[str, Any] = {}
    known = {row.env: row for row in SETTINGS}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        row = known.get(key)
        if row is None:
            names = {row.name: row.env for row in SETTINGS} | {"config": CONFIG_ENV}
            hint = _suggest(key.removeprefix(ENV_PREFIX).lower(), names)
            raise SystemExit(f"{key}: no such setting{hint} (`mingpian settings` lists them)")
        shown = row.shown(raw)
        values[row.name] = _checked(row, raw, f"{key}={shown!r}", text=True)
    return values


def load_config(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file, checked; keys are setting names (`port = 8081`)."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SystemExit(f"{path}: invalid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in doc.items():
        row = SETTING_BY_NAME.get(key)
        if row is None:
            hint = _suggest(key, {name: name for name in SETTING_BY_NAME})
            raise SystemExit(f"{path}: {key}: no such setting{hint} (`mingpian settings` lists them)")
        values[key] = _checked(row, value, f"{path}: {key} = {row.shown(value)!r}")
    return values


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _doc_default(row: Setting) -> str:
    if row.doc_default:
        return row.doc_default
    value = row.default
    if isinstance(value, Path):
        return f"`{value.relative_to(PROJECT_ROOT)}/`"
    return f"`{row.text(value)}`" if row.text(value) else "(empty)"


def _doc_allowed(row: Setting) -> str:
    if row.choices:
        return ", ".join(f"`{c}`" for c in row.choices)
    return row.allowed()


def markdown_table() -> str:
    """The table of docs/settings.md, rendered from the rows (`mingpian settings --markdown`)."""
    lines = [
        "| setting | environment variable | default | allowed | what it does |",
        "|---|---|---|---|---|",
    ]
    for row in SETTINGS:
        cells = (row.name, f"`{row.env}`", _doc_default(row), _doc_allowed(row), row.help)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
