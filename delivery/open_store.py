"""Which store a deployment's settings name: PostgreSQL for a `postgresql://` URL, else SQLite."""

from __future__ import annotations

from pathlib import Path

from .storage import DeliveryStore


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(
    database_url: str, sqlite_path: Path, synchronous: str = "NORMAL", migrate: str = "auto"
) -> DeliveryStore:
    from .store import PgDeliveryStore, SqliteDeliveryStore  # the store imports every aggregate

    if is_postgres(database_url):
        return PgDeliveryStore(database_url, migrate=migrate)
    return SqliteDeliveryStore(sqlite_path, synchronous, migrate)
