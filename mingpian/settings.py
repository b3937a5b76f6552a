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

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def base_url(self) -> str:
        """Where clients reach this server (for media URLs); derived from host:port if unset."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"


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
}


def documented_settings() -> list[SettingDoc]:
    return [
        SettingDoc(f.name, "MINGPIAN_" + f.name.upper(), SETTINGS_HELP.get(f.name, ""))
        for f in fields(Settings)
    ]
