"""The migration runner for PostgreSQL: the same numbered files, checks and refusals as the
SQLite runner (infra/migrations.py), with PostgreSQL's own lock.

Each step is one transaction that first takes `pg_advisory_xact_lock` on a key of the database's
migration set (released by the commit), then re-reads `schema_migrations`, checks it with `plan`,
applies the next pending file and records it. Workers starting at once on one database queue on
the lock; the ones that wait find the work done. PostgreSQL's DDL is transactional, so a failed
migration leaves nothing of itself behind.
"""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

from .migrations import (
    MODES,
    TABLE,
    Applied,
    MigrationError,
    Migrations,
    PendingMigrations,
    Status,
    Step,
    plan,
)

log = logging.getLogger("infra.migrations")
_TABLE_SQL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at DOUBLE PRECISION NOT NULL, checksum TEXT NOT NULL)"
)


def lock_key(migrations: Migrations) -> int:
    """One advisory lock per database's migration set (a stable 31-bit number)."""
    return zlib.crc32(f"mingpian:{migrations.database}".encode()) & 0x7FFFFFFF


async def status_postgres(conn: Any, migrations: Migrations) -> Status:
    """What is applied and what is pending (reads only)."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", TABLE)
    if not exists:
        return Status((), migrations.migrations)
    rows = await conn.fetch(f"SELECT version, name, applied_at, checksum FROM {TABLE} ORDER BY version")
    applied = tuple(Applied(int(r[0]), str(r[1]), float(r[2]), str(r[3])) for r in rows)
    done = {a.version for a in applied}
    return Status(applied, tuple(m for m in migrations.migrations if m.version not in done))


async def migrate_postgres(
    conn: Any, migrations: Migrations, mode: str = "auto", where: str = ""
) -> list[Step]:
    """Bring the database to the code's schema (`auto`), refuse if anything is pending (`check`:
    PendingMigrations) or do nothing (`off`). `conn`: an asyncpg connection outside a transaction."""
    if mode not in MODES:
        raise ValueError(f"migrate mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return []
    where = where or f"{migrations.database} database"
    st = await status_postgres(conn, migrations)
    pending = plan(migrations, st.applied, where)
    if not pending:
        return []
    if mode == "check":
        raise PendingMigrations.of(where, migrations, pending)
    level = logging.DEBUG if not st.applied else logging.INFO
    steps: list[Step] = []
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(migrations))
            await conn.execute(_TABLE_SQL)
            st = await status_postgres(conn, migrations)
            pending = plan(migrations, st.applied, where)
            if not pending:
                return steps
            mig = pending[0]
            try:
                await conn.execute(mig.sql)
            except Exception as exc:  # the driver's own error types: reported as one line
                raise MigrationError(f"{mig.file}: {exc} (on {where}; nothing of it applied)") from None
            await conn.execute(
                f"INSERT INTO {TABLE} (version, name, applied_at, checksum) VALUES ($1,$2,$3,$4)",
                mig.version, mig.name, time.time(), mig.checksum,
            )  # fmt: skip
        steps.append(Step(mig))
        log.log(level, "%s: %s applied", where, mig.file)
