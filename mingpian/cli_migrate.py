"""`mingpian migrate [--status]`: this deployment's SQLite databases (where the settings put them)
brought to the code's schema, or what is applied and pending in each listed.

The same runner as the stores' `open()` (infra/migrations.py), so running this before `serve`
(with `migrate = "check"` or `"off"`) leaves the server nothing to do at start. A refusal of the
runner (a changed migration file, a database of a newer release) is one line and exit code 2.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from chatbot.store.sqlite import SCHEMA as CHATBOT
from delivery.drivers.postgres import MIGRATIONS as DELIVERY_PG
from delivery.drivers.sqlite import SCHEMA as DELIVERY
from infra.migrations import (
    MigrationError,
    Migrations,
    PendingMigrations,
    Status,
    enable_wal,
    migrate_sqlite,
    plan,
    status_sqlite,
)
from infra.migrations_pg import migrate_postgres, status_postgres

from .api.chatbot import runtime_config
from .api.delivery import delivery_config
from .settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Database:
    name: str
    path: Path | None  # None: not a file of this host (the Redis chatbot store, a PostgreSQL database)
    migrations: Migrations
    url: str = ""  # a PostgreSQL database: its URL


def databases(settings: Settings) -> list[Database]:
    """The databases the server opens with these settings, at the paths it opens them."""
    chatbot = runtime_config(settings)
    if settings.database_url:
        delivery = Database("delivery", None, DELIVERY_PG, settings.database_url)
    else:
        delivery = Database("delivery", delivery_config(settings).database, DELIVERY)
    return [
        delivery,
        Database("chatbot", chatbot.sqlite_path if chatbot.store == "sqlite" else None, CHATBOT),
    ]


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    enable_wal(db)  # as the stores open it
    return db


def apply(settings: Settings) -> list[str]:
    """Apply what is pending in every database; one line per database."""
    lines = []
    for d in databases(settings):
        if d.url:
            steps = asyncio.run(
                _on_postgres(d, partial(migrate_postgres, migrations=d.migrations, mode="auto"))
            )
            done = [f"applied {s.migration.label}" for s in steps]
            latest = d.migrations.migrations[-1].label
            lines.append(f"{d.name} (PostgreSQL): {', '.join(done) if done else f'up to date ({latest})'}")
            continue
        if d.path is None:
            lines.append(f"{d.name}: the {settings.store} store has no schema to migrate")
            continue
        db = _connect(d.path)
        try:
            steps = migrate_sqlite(db, d.migrations, "auto")
        finally:
            db.close()
        done = [f"{'adopted' if s.adopted else 'applied'} {s.migration.label}" for s in steps]
        latest = d.migrations.migrations[-1].label
        lines.append(f"{d.name} {d.path}: {', '.join(done) if done else f'up to date ({latest})'}")
    return lines


def status(settings: Settings) -> tuple[list[str], MigrationError | None]:
    """Per database: each migration, applied (when) or pending; and the first refusal, if any."""
    lines: list[str] = []
    problem: MigrationError | None = None
    for d in databases(settings):
        if d.url:
            st = asyncio.run(_on_postgres(d, partial(status_postgres, migrations=d.migrations)))
            lines.append(f"{d.name} (PostgreSQL)")
            lines += _status_lines(d, st)
            try:
                plan(d.migrations, st.applied, f"{d.name} database")
            except MigrationError as exc:
                problem = problem or exc
            continue
        if d.path is None:
            lines.append(f"{d.name}: the {settings.store} store has no schema to migrate")
            continue
        lines.append(f"{d.name} {d.path}")
        width = max(len(m.label) for m in d.migrations.migrations)
        if not d.path.exists():
            lines.append("  (no database yet: created at the first start or `mingpian migrate`)")
            lines += [f"  {m.label:<{width}}  pending" for m in d.migrations.migrations]
            continue
        db = sqlite3.connect(d.path, isolation_level=None, timeout=10)
        try:
            st = status_sqlite(db, d.migrations)
        finally:
            db.close()
        for a in st.applied:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a.applied_at))
            lines.append(f"  {f'{a.version:04d}_{a.name}':<{width}}  applied {when}")
        for m in st.pending:
            note = (
                " (made before migrations: recorded without running it)"
                if st.adopt and m.version == 1
                else ""
            )
            lines.append(f"  {m.label:<{width}}  pending{note}")
        try:
            plan(d.migrations, st.applied, str(d.path))
        except MigrationError as exc:
            problem = problem or exc
    return lines, problem


def _status_lines(d: Database, st: Status) -> list[str]:
    width = max(len(m.label) for m in d.migrations.migrations)
    lines = []
    for a in st.applied:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(a.applied_at))
        lines.append(f"  {f'{a.version:04d}_{a.name}':<{width}}  applied {when}")
    lines += [f"  {m.label:<{width}}  pending" for m in st.pending]
    return lines


async def _on_postgres(d: Database, work: Callable[[Any], Awaitable[T]]) -> T:
    import asyncpg  # here for its errors only; loaded already with delivery.drivers.postgres

    from delivery.drivers.pghosts import HostChooser

    try:  # the writable server, when the URL names several (migrations write)
        conn = await HostChooser(d.url).connect(timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise MigrationError(f"{d.name} database: cannot connect: {exc}") from None
    try:
        return await work(conn)
    finally:
        await conn.close()


def preflight(settings: Settings) -> None:
    """Before `serve` builds anything: refuse what the stores' open would refuse (a changed
    migration, a database of a newer release; with `migrate = "check"`, a pending migration), so
    the refusal is one line rather than a half-started server. Reads only."""
    if settings.migrate == "off":
        return
    for d in databases(settings):
        if d.url:
            st = asyncio.run(_on_postgres(d, partial(status_postgres, migrations=d.migrations)))
            pending = plan(d.migrations, st.applied, f"{d.name} database")
            if pending and settings.migrate == "check":
                raise PendingMigrations.of(f"{d.name} database", d.migrations, pending)
            continue
        if d.path is None:
            continue
        if not d.path.exists():
            if settings.migrate == "check":
                raise PendingMigrations.of(str(d.path), d.migrations, d.migrations.migrations)
            continue
        db = sqlite3.connect(d.path, isolation_level=None, timeout=10)
        try:
            migrate_sqlite(db, d.migrations, "check")
        except PendingMigrations:
            if settings.migrate == "check":
                raise
        finally:
            db.close()


def run(settings: Settings, *, show_status: bool) -> int:
    try:
        if show_status:
            lines, problem = status(settings)
            print("\n".join(lines))
            if problem is not None:
                print(f"mingpian migrate: {problem}", file=sys.stderr)
                return 2
            return 0
        print("\n".join(apply(settings)))
    except MigrationError as exc:
        print(f"mingpian migrate: {exc}", file=sys.stderr)
        return 2
    return 0
