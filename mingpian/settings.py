"""Every setting in one table: name, environment variable, type, default, help.

The table is the single source of truth: `Settings.from_env()` reads it, `mingpian settings`
prints it, docs/settings.md documents it, and tests/test_settings.py fails when a row is missing
from the docs. Features add their rows here rather than reading os.environ themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class SettingDoc:
    name: str
    env: str
    help: str


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    template_dir: Path = PROJECT_ROOT / "card_templates"
    assets_dir: Path = PROJECT_ROOT / "assets"
    data_dir: Path = PROJECT_ROOT / "var"
    public_base_url: str = ""
    max_body_bytes: int = 256 * 1024
    max_json_depth: int = 32
    reload_interval: float = 0.25
    default_profile: str = "default"
    log_format: str = "json"
    log_level: str = "INFO"
    # -- media (mingpian/media/, renderer/image.py, renderer/video.py; docs/media.md) --
    media_workers: int = 2
    media_concurrency: int = 2
    ffmpeg: str = ""
    # -- chatbot (chatbot/, mingpian/api/chatbot.py; docs/chatbot.md) --
    chatbot_dir: Path = PROJECT_ROOT / "chatbots"
    store: str = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    sqlite_synchronous: str = "NORMAL"
    maap_url: str = ""
    maap_dialect: str = "csp"
    maap_app_id: str = ""
    maap_app_key: str = ""
    maap_token_url: str = ""
    maap_timeout: float = 5.0
    webhook_csp_token: str = ""
    webhook_username: str = ""
    webhook_password: str = ""
    webhook_bearer: str = ""
    webhook_hmac_secret: str = ""
    webhook_replay_window: float = 300.0
    webhook_app_id: str = ""
    dedupe_ttl: float = 604800.0
    outbox_concurrency: int = 64
    outbox_backoff: float = 0.2
    outbox_max_backoff: float = 60.0
    outbox_lease: float = 30.0
    # -- delivery (delivery/, mingpian/api/delivery/; docs/delivery.md) --
    delivery_counters: str = "sqlite"
    delivery_seed: str = ""
    delivery_operator_key: str = ""
    delivery_smpp: str = ""
    delivery_smpp_system_id: str = "mingpian"
    delivery_smpp_password: str = ""
    delivery_flash_gsm_dcs: int = 16
    delivery_timeouts: str = "rcs=60,ussd=5,flash=30,sms=120"
    delivery_ring_timeout: float = 45.0
    delivery_capability_path: str = "/bot/v1/{chatbot}/contactCapabilities?userContact={contact}"
    delivery_capability_ttl: float = 86400.0
    delivery_kannel_url: str = ""
    delivery_kannel_username: str = ""
    delivery_kannel_password: str = ""
    delivery_kannel_channels: str = "flash,sms"
    delivery_kannel_token: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then MINGPIAN_* environment variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = "MINGPIAN_" + f.name.upper()
            if key in env:
                values[f.name] = _coerce(f.name, f.default, env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={self.shown(f.name)!r}" for f in fields(self))
        return f"Settings({shown})"

    def shown(self, name: str) -> Any:
        """The value for display: secrets (keys, passwords, tokens) are masked, never printed."""
        value = getattr(self, name)
        if is_secret(name) and value:
            return "********"
        return value

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def base_url(self) -> str:
        """Where clients reach this server (for media URLs); derived from host:port if unset."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


_SECRET_WORDS = ("password", "secret", "token", "app_key", "operator_key")


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS)


def _coerce(name: str, default: Any, raw: str) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw).expanduser()
    except ValueError:
        raise SystemExit(f"MINGPIAN_{name.upper()}={raw!r}: expected {type(default).__name__}") from None
    return raw


SETTINGS_HELP: dict[str, str] = {
    "host": "Interface the HTTP server binds to.",
    "port": "TCP port of the HTTP server.",
    "template_dir": "Folder holding one sub-folder per card template.",
    "assets_dir": "Shared assets (fonts, logos) templates may reference; nothing outside it or the "
    "template folder is readable from a template.",
    "data_dir": "Where local state lives (SQLite databases, media cache). Created on start.",
    "public_base_url": "Base URL clients use to reach this server, for mediaUrl/thumbnailUrl "
    "(default: http://HOST:PORT).",
    "max_body_bytes": "Largest request body accepted; larger bodies get 413.",
    "max_json_depth": "Deepest nesting accepted in a JSON request body; deeper gets 400.",
    "reload_interval": "Seconds between checks of a template's files for changes.",
    "default_profile": "Carrier profile (limits) used when a request names none.",
    "log_format": "`json` (one JSON object per line) or `text`.",
    "log_level": "Python logging level name.",
    "media_workers": "Worker processes rendering images and videos (off the event loop).",
    "media_concurrency": "Media renders running at once; more wait in a queue (bounds memory).",
    "ffmpeg": "ffmpeg binary for videos; empty: the one shipped in the imageio-ffmpeg wheel.",
    "chatbot_dir": "Folder of chatbot flows, one `<bot>/flow.yaml` per bot (docs/chatbot.md).",
    "store": "Chatbot state store: `sqlite` (embedded, one process) or `redis` (shared, scale-out).",
    "redis_url": "Redis URL for the `redis` store.",
    "sqlite_synchronous": "SQLite `synchronous` pragma for the chatbot store (NORMAL: survives "
    "process crashes; FULL: also power loss).",
    "maap_url": "Base URL of the MaaP send API (token and messages); empty: replies wait in the outbox.",
    "maap_dialect": "`csp` (CT/CU accessToken API) or `gsma` (OAuth2 client credentials, FNW.11).",
    "maap_app_id": "appId (csp) or OAuth2 client id (gsma) for the MaaP send API.",
    "maap_app_key": "appKey (csp) or OAuth2 client secret (gsma) for the MaaP send API.",
    "maap_token_url": "OAuth2 token endpoint for the gsma dialect (default: MAAP_URL/oauth2/token).",
    "maap_timeout": "Seconds before a MaaP request counts as failed (and is retried).",
    "webhook_csp_token": "Token of the CT/CU `signature`/`timestamp`/`nonce` callback check.",
    "webhook_username": "Expected `Authorization: Username=..` on callbacks (China Mobile style).",
    "webhook_password": "Expected `Password=..` on callbacks (with webhook_username).",
    "webhook_bearer": "Expected `Authorization: Bearer ..` token on callbacks.",
    "webhook_hmac_secret": "Secret of the `X-Mingpian-Signature` HMAC-SHA256 over timestamp + raw body.",
    "webhook_replay_window": "Seconds a signed callback's timestamp may differ from now.",
    "webhook_app_id": "appId returned in the `notifyPath` URL check response header.",
    "dedupe_ttl": "Seconds a platform message ID is remembered for deduplication (RBM retries 7 days).",
    "outbox_concurrency": "Replies sent to the MaaP in parallel (one per conversation at a time).",
    "outbox_backoff": "First retry delay in seconds after a failed send (doubles, with jitter).",
    "outbox_max_backoff": "Longest delay in seconds between retries of one reply.",
    "outbox_lease": "Seconds a worker holds a conversation's head message before another may resend it.",
    "delivery_counters": "Where call-event dedupe, quota consumption and frequency caps are counted: "
    "`sqlite` (one process) or `redis` (REDIS_URL; atomic across several server processes).",
    "delivery_seed": "YAML file of enterprises, lines, staff, cards, packages and keys loaded at start.",
    "delivery_operator_key": "The operator's API key (kept only as its SHA-256 hash); empty: none.",
    "delivery_smpp": "host:port of the SMSC for USSD, flash SMS and SMS over SMPP 3.4; empty: no SMPP.",
    "delivery_smpp_system_id": "SMPP system_id for bind_transceiver.",
    "delivery_smpp_password": "SMPP password for bind_transceiver.",
    "delivery_flash_gsm_dcs": "data_coding of a GSM-7 flash SMS: 16 (0x10) or 240 (0xF0) for SMSCs "
    "that want it.",
    "delivery_timeouts": "Seconds to wait for a receipt before falling over, per channel "
    "(`ussd=5,flash=30`).",
    "delivery_ring_timeout": "Seconds after `ringing` a pre-call card may still be sent; later it is "
    "dropped.",
    "delivery_capability_path": "MaaP path asked whether a number is a 5G-message terminal (200 yes, "
    "404 no) before trying `rcs`; `{chatbot}` and `{contact}` are filled in.",
    "delivery_capability_ttl": "Seconds a number's 5G-message capability stays cached.",
    "delivery_kannel_url": "Base URL of a Kannel smsbox (`…/cgi-bin/sendsms`); empty: no Kannel channel.",
    "delivery_kannel_username": "Kannel sendsms username.",
    "delivery_kannel_password": "Kannel sendsms password.",
    "delivery_kannel_channels": "Channels sent through Kannel instead of SMPP (`flash`, `sms`).",
    "delivery_kannel_token": "Secret Kannel must present on dlr-url and MO callbacks (`token=`); "
    "generated at start if empty.",
}


def documented_settings() -> list[SettingDoc]:
    return [
        SettingDoc(f.name, "MINGPIAN_" + f.name.upper(), SETTINGS_HELP.get(f.name, ""))
        for f in fields(Settings)
    ]
