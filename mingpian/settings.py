"""Every setting as one row: name, type, default, allowed values and help, in one declaration.

Each field of the `Settings` dataclass is declared with `setting(default, help, ...)`, which puts a
`Setting` row into the field's metadata; the name and the type come from the field itself. This
was preferred over a separate table from which the dataclass is generated because the class stays
an ordinary, statically typed dataclass: `settings.port` is an `int` to readers, editors and type
checkers, and a setting cannot exist without its row (or the row without its field).

The rows are the single source of truth: `Settings.from_env()` reads and checks the values,
`mingpian settings` prints them, `markdown_table()` renders the table in docs/settings.md (and
tests/server/test_settings.py fails when the two differ). Features add their rows here rather than
reading os.environ themselves.

Values come from, lowest first: the defaults, a TOML config file (`--config` or MINGPIAN_CONFIG),
MINGPIAN_* environment variables, explicit overrides (command-line flags). A bad value, an unknown
MINGPIAN_* variable or an unknown config key stops the program with one line naming where it came
from, the value and what is allowed (SystemExit, printed without a traceback).
"""

# setting() returns dataclasses.field(...), which RUF009 does not know of:
# ruff: noqa: RUF009

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from delivery.chain import DEFAULT_TIMEOUTS
from delivery.stafflimits import MAX_MEMBERS
from infra.migrations import MODES as MIGRATE_MODES
from renderer.profiles import PROFILES

from .setting_rows import (
    DATABASE_URL_ALLOWED,
    ENV_PREFIX,
    HOST_PORT_ALLOWED,
    KANNEL_ALLOWED,
    LOG_LEVELS,
    MAAP_ACCOUNTS_ALLOWED,
    NETWORKS_ALLOWED,
    PROXIES_ALLOWED,
    SCHEMES_ALLOWED,
    SENDER_ALLOWED,
    TIMEOUTS_ALLOWED,
    Setting,
    SettingError,
    parse_database_url,
    parse_host_port,
    parse_kannel_channels,
    parse_maap_accounts,
    parse_networks,
    parse_proxies,
    parse_sender,
    parse_timeouts,
    parse_webhook_schemes,
    setting,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "MINGPIAN_CONFIG"  # names the config file; not a setting itself


@dataclass(frozen=True, slots=True)
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
        "The Markdown docs served as pages at `/docs` (with the `README.md` beside the folder).",
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
    log_format: str = setting("json", "`json` (one object per line) or `text`.", choices=("json", "text"))
    log_level: str = setting("INFO", "Python logging level name.", choices=LOG_LEVELS)
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
    store: str = setting(
        "sqlite",
        "Chatbot state store: `sqlite` (embedded, one process) or `redis` (shared by several processes).",
        choices=("sqlite", "redis"),
    )
    redis_url: str = setting("redis://127.0.0.1:6379/0", "Redis URL for the `redis` store and counters.")
    sqlite_synchronous: str = setting(
        "NORMAL",
        "SQLite `synchronous` for the chatbot and delivery "
        "stores: NORMAL survives process crashes, FULL also power loss.",
        choices=("OFF", "NORMAL", "FULL", "EXTRA"),
    )
    migrate: str = setting(
        "auto",
        "Schema migrations of the SQLite databases (delivery, chatbot) at start: `auto` applies "
        "pending ones, `check` refuses to start while one is pending (run `mingpian migrate`), "
        "`off` leaves the schema alone.",
        choices=MIGRATE_MODES,
    )
    maap_url: str = setting("", "Base URL of the MaaP send API; empty: replies wait in the outbox.")
    maap_dialect: str = setting(
        "csp",
        "`csp` (CT/CU accessToken API, JSON), `cm` (China Mobile, OMA XML with Basic credentials) or "
        "`gsma` (OAuth2 client credentials, FNW.11).",
        choices=("csp", "cm", "gsma"),
    )
    maap_app_id: str = setting("", "appId (csp) or OAuth2 client id (gsma).")
    maap_app_key: str = setting("", "appKey (csp) or OAuth2 client secret (gsma).")
    maap_token_url: str = setting(
        "", "OAuth2 token endpoint (gsma dialect).", doc_default="`MAAP_URL/oauth2/token`"
    )
    maap_timeout: float = setting(
        5.0, "Seconds before a MaaP request counts as failed (and is retried).", above=0
    )
    maap_cm_secret: str = setting(
        "password",
        "`cm` dialect: the secret hashed with the Date header into `Authorization: Basic`: "
        "`password` (variant A: SHA256hex of `MAAP_APP_KEY`) or `token` (variant B: `MAAP_APP_KEY` "
        "is the CSP token in base64, decoded).",
        choices=("password", "token"),
    )
    maap_file_server: str = setting(
        "",
        "`cm` dialect: China Mobile's fileServerRoot (uploads go to `…/Content`).",
        doc_default="`MAAP_URL`",
    )
    maap_upload_mode: str = setting(
        "perm", "`csp` dialect: `uploadMode` of media uploads, `perm` or `temp`.", choices=("perm", "temp")
    )
    maap_media: str = setting(
        "upload",
        "`upload`: a card's media served by this server (`/media/…`) is uploaded to the MaaP once "
        "per content hash and the card points at the MaaP's copy (csp, cm); `off`: cards keep our URLs.",
        choices=("upload", "off"),
    )
    maap_media_profile: str = setting(
        "",
        "Carrier profile whose media limits uploads are fitted to (image, video, thumbnail bytes).",
        choices=("", *PROFILES),
        doc_default="by dialect: csp `china-unicom`, cm `china-mobile`, gsma `default`",
    )
    maap_accounts: str = setting(
        "",
        "More MaaP accounts, each sending for the chatbots it names (the `MAAP_*` account sends "
        "for every other chatbot), e.g. a China Mobile chatbot beside a China Unicom one.",
        parse=parse_maap_accounts,
        allowed_doc=MAAP_ACCOUNTS_ALLOWED,
    )
    webhook_csp_token: str = setting("", "Token of the CT/CU `signature`/`timestamp`/`nonce` callback check.")
    webhook_username: str = setting(
        "", "Expected `Authorization: Username=..` on callbacks (China Mobile style)."
    )
    webhook_password: str = setting("", "Expected `Password=..` (with webhook_username).")
    webhook_bearer: str = setting("", "Expected `Authorization: Bearer ..` token on callbacks.")
    webhook_hmac_secret: str = setting(
        "", "Secret of the `X-Mingpian-Signature` HMAC-SHA256 over timestamp + raw body."
    )
    webhook_replay_window: float = setting(
        300.0, "Seconds a signed callback's timestamp may differ from now.", minimum=0
    )
    webhook_app_id: str = setting("", "appId returned in the `notifyPath` URL-check response header.")
    webhook_csp_schemes: tuple[str, ...] = setting(
        ("csp-signature", "hmac-sha256"),
        "Auth schemes the CT/CU routes (`notifyPath`, `messageNotification`, `deliveryNotification`) accept.",
        parse=parse_webhook_schemes,
        allowed_doc=SCHEMES_ALLOWED,
    )
    webhook_gsma_schemes: tuple[str, ...] = setting(
        ("bearer", "hmac-sha256"),
        "Auth schemes the GSMA MaaP route (`events`) accepts.",
        parse=parse_webhook_schemes,
        allowed_doc=SCHEMES_ALLOWED,
    )
    webhook_cm_schemes: tuple[str, ...] = setting(
        ("username-password", "hmac-sha256"),
        "Auth schemes the China Mobile routes accept.",
        parse=parse_webhook_schemes,
        allowed_doc=SCHEMES_ALLOWED,
    )
    webhook_csp_networks: tuple[str, ...] = setting(
        (),
        "Source networks the CT/CU routes accept callbacks from (the peer address, or behind "
        "`trusted_proxies` the client they name); empty: any.",
        parse=parse_networks,
        allowed_doc=NETWORKS_ALLOWED,
    )
    webhook_gsma_networks: tuple[str, ...] = setting(
        (),
        "Source networks the GSMA MaaP route accepts callbacks from; empty: any.",
        parse=parse_networks,
        allowed_doc=NETWORKS_ALLOWED,
    )
    webhook_cm_networks: tuple[str, ...] = setting(
        (),
        "Source networks the China Mobile routes accept callbacks from; empty: any.",
        parse=parse_networks,
        allowed_doc=NETWORKS_ALLOWED,
    )
    dedupe_ttl: float = setting(
        604800.0,
        "Seconds a platform message ID is remembered for deduplication (RBM retries for 7 days).",
        above=0,
    )
    outbox_concurrency: int = setting(
        64, "Replies sent to the MaaP in parallel (one per conversation at a time).", minimum=1
    )
    outbox_backoff: float = setting(
        0.2, "First retry delay (s) after a failed send; doubles with jitter.", minimum=0
    )
    outbox_max_backoff: float = setting(60.0, "Longest delay (s) between retries of one reply.", minimum=0)
    outbox_lease: float = setting(
        30.0, "Seconds a worker holds a conversation's head message before another may resend it.", above=0
    )
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
    database_url: str = setting(
        "",
        "PostgreSQL URL of the delivery domain's system of record, shared by every worker (needs "
        "`delivery_counters=redis`); empty: a SQLite file in `data_dir`, one process.",
        parse=parse_database_url,
        allowed_doc=DATABASE_URL_ALLOWED,
    )
    delivery_counters: str = setting(
        "sqlite",
        "Where call-event dedupe, quota consumption and frequency "
        "caps are counted: `sqlite` (one process) or `redis` (`REDIS_URL`; "
        "atomic across server processes).",
        choices=("sqlite", "redis"),
    )
    delivery_seed: str = setting(
        "",
        "YAML file of enterprises, lines, staff, cards, packages and keys "
        "loaded at start (docs/delivery.md).",
    )
    delivery_operator_key: str = setting(
        "", "The operator's API key (only its SHA-256 hash is kept); empty: none."
    )
    delivery_smpp: str = setting(
        "",
        "`host:port` of the SMSC for USSD, flash SMS and SMS over SMPP 3.4; empty: no SMPP channels.",
        parse=parse_host_port,
        allowed_doc=HOST_PORT_ALLOWED,
    )
    delivery_smpp_system_id: str = setting("mingpian", "SMPP `system_id` for `bind_transceiver`.")
    delivery_smpp_password: str = setting("", "SMPP password for `bind_transceiver`.")
    delivery_smpp_binds: int = setting(
        1,
        "SMPP sessions (`bind_transceiver`) each server process keeps; submits are spread over the "
        "bound ones. The SMSC account must allow at least this × the number of server processes.",
        minimum=1,
    )
    delivery_smpp_window: int = setting(
        256, "Submits a session may have outstanding (sent, not yet answered) at once.", minimum=1
    )
    delivery_smpp_rate: float = setting(
        0.0,
        "Submits per second for the whole SMSC account, spaced evenly; shared by every server "
        "process through Redis with `delivery_counters=redis`. 0: no limit.",
        minimum=0,
    )
    delivery_smpp_wait: float = setting(
        5.0,
        "Longest a submit waits for a bound session, a pause after throttling (0x58, 0x14) or a "
        "rate slot; past it (or the attempt's receipt timeout) the attempt fails, retryable, and "
        "the chain moves on.",
        minimum=0,
    )
    delivery_flash_gsm_dcs: int = setting(
        16,
        "`data_coding` of a GSM-7 flash SMS: 16 (0x10), or 240 (0xF0) for SMSCs that want it.",
        choices=(16, 240),
    )
    delivery_smpp_numbering: str = setting(
        "national",
        "How the SMSC account numbers subscribers: `national` (11 national digits, TON 2 / NPI 1) "
        "or `international` (digits with the country code, TON 1 / NPI 1).",
        choices=("national", "international"),
    )
    delivery_smpp_service_ton: int = setting(
        3,
        "TON of a service-code sender (106…, 95555): 3 (network specific) or 0 (unknown), NPI 0.",
        choices=(3, 0),
    )
    delivery_platform_sender: str = setting(
        "",
        "What texts of a line the operator has not verified go out from (the platform's own 106… "
        "code): an unverified line may be anyone's number, so it is never the sender. Empty: "
        "`source_addr` is left empty and the SMSC puts the account's default.",
        parse=parse_sender,
        allowed_doc=SENDER_ALLOWED,
    )
    delivery_staff_max: int = setting(
        MAX_MEMBERS,
        "Staff members an enterprise may have; the JSON API and the CSV import refuse more (an "
        "export streams, so this bounds what is stored, not memory). One CSV file holds at most "
        "50,000 rows.",
        minimum=1,
    )
    delivery_timeouts: dict[str, float] = setting(
        help="Seconds to wait for a receipt before falling over to the next channel; channels not "
        "named keep their default.",
        factory=lambda: dict(DEFAULT_TIMEOUTS),
        parse=parse_timeouts,
        allowed_doc=TIMEOUTS_ALLOWED,
    )
    delivery_lease: float = setting(
        15.0,
        "Seconds a worker holds a delivery chain without renewing its lease; after that (the worker "
        "died) another worker takes the chain over.",
        above=0,
    )
    delivery_ring_timeout: float = setting(
        45.0,
        "Seconds after `ringing` a pre-call card may still be sent; after that it is dropped.",
        minimum=0,
    )
    delivery_capability_path: str = setting(
        "",
        "MaaP path asked whether a number "
        "is a 5G-message terminal (200 yes, 404 no) before trying `rcs` (uses the chatbot's MaaP "
        "account and credentials); `{chatbot}` and `{contact}` are filled in.",
        doc_default="the dialect's own (docs/chatbot.md, Capability)",
    )
    delivery_capability_ttl: float = setting(
        86400.0, "Seconds a number's 5G-message capability stays cached.", minimum=0
    )
    delivery_kannel_url: str = setting(
        "", "Base URL of a Kannel smsbox (`…/cgi-bin/sendsms`); empty: no Kannel channel."
    )
    delivery_kannel_username: str = setting("", "Kannel sendsms username.")
    delivery_kannel_password: str = setting("", "Kannel sendsms password.")
    delivery_kannel_channels: tuple[str, ...] = setting(
        ("flash", "sms"),
        "Channels sent through Kannel instead of SMPP.",
        parse=parse_kannel_channels,
        allowed_doc=KANNEL_ALLOWED,
    )
    console_session_hours: float = setting(
        8.0,
        "Hours a console sign-in lasts (the session cookie's Max-Age); then the key is asked again.",
        above=0,
        maximum=24 * 30,
    )
    delivery_kannel_token: str = setting(
        "",
        "Secret Kannel presents on `dlr-url` and MO callbacks (`token=`); random per start if empty.",
        doc_default="(generated)",
    )

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
