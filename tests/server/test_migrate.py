"""`mingpian migrate [--status]` and the `migrate` setting as users meet them: real processes on a
real data folder."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from chatbot.store.sqlite import SCHEMA as CHATBOT
from delivery.drivers.sqlite import SCHEMA as DELIVERY
from mingpian.app import create_app
from mingpian.cli_migrate import apply
from mingpian.settings import Settings
from tests.support.templates import TEMPLATES

# The delivery store's migrations by name, and how `migrate --status` lines them up.
NAMES = [f"{m.version:04d}_{m.name}" for m in DELIVERY.migrations]
BOT_NAMES = [f"{m.version:04d}_{m.name}" for m in CHATBOT.migrations]


def status_lines(state: str, first: str | None = None, names: list[str] = NAMES) -> list[str]:
    width = max(len(n) for n in names)
    return [f"  {n.ljust(width)}  {first if i == 0 and first else state}" for i, n in enumerate(names)]


def mingpian(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    return subprocess.run(
        [sys.executable, "-m", "mingpian", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_status_then_migrate_then_status(tmp_path: Path) -> None:
    var = tmp_path / "var"
    config = tmp_path / "mingpian.toml"
    config.write_text(f'data_dir = "{var}"\n', "utf-8")
    out = mingpian("migrate", "--status", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"delivery {var / 'delivery.sqlite3'}",
        "  (no database yet: created at the first start or `mingpian migrate`)",
        *status_lines("pending"),
        f"chatbot {var / 'chatbot.sqlite3'}",
        "  (no database yet: created at the first start or `mingpian migrate`)",
        *status_lines("pending", names=BOT_NAMES),
    ]
    assert not var.exists()  # --status only reads

    out = mingpian("migrate", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"delivery {var / 'delivery.sqlite3'}: " + ", ".join(f"applied {n}" for n in NAMES),
        f"chatbot {var / 'chatbot.sqlite3'}: " + ", ".join(f"applied {n}" for n in BOT_NAMES),
    ]
    out = mingpian("migrate", "--config", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"delivery {var / 'delivery.sqlite3'}: up to date ({NAMES[-1]})"

    out = mingpian("migrate", "--status", "--config", str(config))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    n = len(NAMES)
    assert [line.split()[:2] for line in lines[1 : n + 1]] == [[name, "applied"] for name in NAMES]
    assert lines[n + 2].split()[:2] == ["0001_initial", "applied"] and lines[n + 2].endswith(" UTC")


def test_migrate_status_shows_adoption_and_the_redis_store_has_no_schema(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    with closing(sqlite3.connect(var / "delivery.sqlite3", isolation_level=None)) as db:
        db.executescript(DELIVERY.migrations[0].sql)  # made by the release before migrations
    env = {"MINGPIAN_DATA_DIR": str(var), "MINGPIAN_STORE": "redis"}
    out = mingpian("migrate", "--status", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"delivery {var / 'delivery.sqlite3'}",
        *status_lines("pending", "pending (made before migrations: recorded without running it)"),
        "chatbot: the redis store has no schema to migrate",
    ]
    out = mingpian("migrate", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        f"delivery {var / 'delivery.sqlite3'}: adopted 0001_initial, "
        + ", ".join(f"applied {n}" for n in NAMES[1:])
    )


def test_migrate_refuses_a_changed_migration_with_one_line(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {"MINGPIAN_DATA_DIR": str(var)}
    assert mingpian("migrate", env=env).returncode == 0
    with closing(sqlite3.connect(var / "chatbot.sqlite3", isolation_level=None)) as db:
        db.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    for args in (("migrate",), ("migrate", "--status"), ("serve",)):
        out = mingpian(*args, env=env)
        assert out.returncode == 2, out.stderr
        [line] = out.stderr.splitlines()
        assert "chatbot/store/migrations/sqlite/0001_initial.sql: changed after it was applied to " in line


def test_serve_with_migrate_check_and_a_pending_migration_exits_2_with_one_line(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    with closing(
        sqlite3.connect(var / "delivery.sqlite3", isolation_level=None)
    ) as db:  # the release before migrations
        db.executescript(DELIVERY.migrations[0].sql)
    config = tmp_path / "mingpian.toml"
    config.write_text(f'data_dir = "{var}"\nmigrate = "check"\n', "utf-8")
    out = mingpian("serve", "--config", str(config), env={"MINGPIAN_PORT": "0"})
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert out.stderr.splitlines() == [
        f"mingpian serve: {var / 'delivery.sqlite3'}: {len(NAMES)} delivery migration(s) pending "
        f"({', '.join(NAMES)}); migrate = check: run `mingpian migrate --config {config}` first"
    ]
    with closing(sqlite3.connect(var / "delivery.sqlite3")) as db:
        assert "schema_migrations" not in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}


def versions(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as db:
        return [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")]


async def test_serve_with_migrate_check_starts_once_migrated(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = Settings(template_dir=TEMPLATES, data_dir=tmp_path / "var", migrate="check", log_format="text")
    assert len(apply(settings)) == 2
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/healthz")).status == 200
    assert versions(tmp_path / "var" / "delivery.sqlite3") == [m.version for m in DELIVERY.migrations]
    assert versions(tmp_path / "var" / "chatbot.sqlite3") == [m.version for m in CHATBOT.migrations]


async def test_the_server_on_its_defaults_migrates_at_start(tmp_path: Path, aiohttp_client: Any) -> None:
    """`migrate = auto` (the default): no extra step; a database of the release before migrations
    is adopted and brought up to date when the server opens it."""
    var = tmp_path / "var"
    var.mkdir()
    with closing(sqlite3.connect(var / "delivery.sqlite3", isolation_level=None)) as db:
        db.executescript(DELIVERY.migrations[0].sql)
    settings = Settings(template_dir=TEMPLATES, data_dir=var, log_format="text")
    assert settings.migrate == "auto"
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/healthz")).status == 200
    assert versions(var / "delivery.sqlite3") == [m.version for m in DELIVERY.migrations]
    assert versions(var / "chatbot.sqlite3") == [m.version for m in CHATBOT.migrations]
