"""Numbered, versioned schema migrations: one folder of `NNNN_name.sql` files per database and
backend, applied in order, each in its own transaction, recorded in `schema_migrations`.

Why here (infra/) and not in mingpian/: the runner knows nothing of settings or of the server.
The stores call it from their `open()` with a mode (`auto`, `check` or `off`), and the server
maps its `migrate` setting and the `mingpian migrate` command onto the same calls.

Layout: a package keeps its files in `migrations/<backend>/` (`delivery/migrations/sqlite/`,
`chatbot/store/migrations/sqlite/`), shipped as package data. `0001_initial.sql` is the schema
the project had before migrations. Versions are unique and run 1, 2, 3, … without gaps. A file,
once released, is never edited: its checksum (SHA-256 of the text, line endings normalised) is
recorded when it is applied, and a database whose recorded checksum differs from the file is
refused. So is a database that has a version this code does not know (it was migrated by a newer
release: a downgrade), and one where a pending migration is numbered below an applied one.

Adopting a database made before migrations existed: the migration set names a table the
baseline (0001) creates (`adopt_if_table`). When that table exists and `schema_migrations`
does not, 0001 is recorded as applied without running it, after checking that every table and
index 0001 creates is there (a database from a build older than the baseline is refused, naming
what it lacks, rather than adopted half-made).

Concurrency: several processes may start at once on one database. For SQLite each step is one
`BEGIN IMMEDIATE` transaction (SQLite's write lock): under the lock the runner re-reads the
applied versions, checks them, applies the next pending migration and records it, then commits;
a process that waited for the lock finds the work done and applies nothing twice. SQLite's DDL
is transactional, so a migration that fails leaves nothing of itself behind.

Other backends: a PostgreSQL store adds `migrations/postgresql/NNNN_*.sql` next to the SQLite
ones and a runner that does the same per step inside `BEGIN … COMMIT`, taking
`SELECT pg_advisory_xact_lock(<a constant key per database>)` first (released by the commit),
re-reading `schema_migrations` under it. `Migrations.load`, `plan` and the error types below are
shared by every backend; only `status_sqlite` / `migrate_sqlite` are SQLite's.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

log = logging.getLogger(__name__)

Mode = Literal["auto", "check", "off"]
MODES: tuple[Mode, ...] = ("auto", "check", "off")
TABLE = "schema_migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TABLE_SQL = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (version INTEGER PRIMARY KEY, name TEXT, applied_at REAL, "
    "checksum TEXT)"
)


class MigrationError(Exception):
    """The database cannot be brought to (or checked against) the code's schema; the message is
    one line naming the database and the migration file."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file changed since."""


class DatabaseTooNew(MigrationError):
    """The database has a version this code does not know: it was migrated by a newer release."""


class PendingMigrations(MigrationError):
    """Mode `check`: migrations are pending (nothing was changed)."""

    def __init__(self, message: str, pending: Sequence[Migration]) -> None:
        super().__init__(message)
        self.pending = tuple(pending)

    @classmethod
    def of(cls, where: str, migrations: Migrations, pending: Sequence[Migration]) -> PendingMigrations:
        labels = ", ".join(m.label for m in pending)
        return cls(f"{where}: {len(pending)} {migrations.database} migration(s) pending ({labels})", pending)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file name's words: "initial" for 0001_initial.sql
    sql: str
    checksum: str
    file: str  # where it lives, for messages: "delivery/migrations/sqlite/0001_initial.sql"

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class Migrations:
    """One database's migrations for one backend, in version order."""

    database: str  # "delivery", "chatbot": for messages
    backend: str  # "sqlite", later "postgresql": the folder under migrations/
    folder: str
    migrations: tuple[Migration, ...]
    adopt_if_table: str = ""  # a table 0001 creates: present without schema_migrations → adopt

    @classmethod
    def load(cls, package: str, backend: str, *, database: str, adopt_if_table: str = "") -> Migrations:
        """The files in `<package>/migrations/<backend>/` (package data). A badly named `.sql`
        file, a repeated version or a gap is a programming error: MigrationError at load."""
        folder = f"{package.replace('.', '/')}/migrations/{backend}"
        root = resources.files(package) / "migrations" / backend
        found: dict[int, Migration] = {}
        for entry in root.iterdir():
            if not entry.name.endswith(".sql"):
                continue
            m = _FILE.match(entry.name)
            if m is None:
                raise MigrationError(f"{folder}/{entry.name}: not named NNNN_words.sql (e.g. 0002_add_index)")
            version = int(m.group(1))
            if version in found:
                raise MigrationError(
                    f"{folder}/{entry.name}: version {version} is also {found[version].file}"
                )
            sql = entry.read_text("utf-8")
            found[version] = Migration(version, m.group(2), sql, checksum(sql), f"{folder}/{entry.name}")
        ordered = tuple(found[v] for v in sorted(found))
        for i, mig in enumerate(ordered, start=1):
            if mig.version != i:
                raise MigrationError(f"{mig.file}: expected version {i:04d} (versions run 1, 2, 3, …)")
        if not ordered:
            raise MigrationError(f"{folder}: no migrations")
        return cls(database, backend, folder, ordered, adopt_if_table)

    @property
    def latest(self) -> int:
        return self.migrations[-1].version

    def by_version(self, version: int) -> Migration | None:
        return self.migrations[version - 1] if 0 < version <= len(self.migrations) else None


@dataclass(frozen=True, slots=True)
class Applied:
    """A row of schema_migrations."""

    version: int
    name: str
    applied_at: float
    checksum: str


@dataclass(frozen=True, slots=True)
class Status:
    applied: tuple[Applied, ...]
    pending: tuple[Migration, ...]
    adopt: bool = False  # made before migrations: 0001 would be recorded, not run


@dataclass(frozen=True, slots=True)
class Step:
    """One migration `migrate_sqlite` recorded: applied, or adopted (recorded without running)."""

    migration: Migration
    adopted: bool = False


def checksum(sql: str) -> str:
    return hashlib.sha256(sql.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def plan(migrations: Migrations, applied: Sequence[Applied], where: str) -> tuple[Migration, ...]:
    """The pending migrations, in order, after checking what is applied against the files
    (any backend). Raises DatabaseTooNew, ChecksumMismatch or MigrationError."""
    done: set[int] = set()
    for row in sorted(applied, key=lambda r: r.version):
        known = migrations.by_version(row.version)
        if known is None:
            label = f"{row.version:04d}_{row.name}"
            if row.version > migrations.latest:
                raise DatabaseTooNew(
                    f"{where}: has migration {label} applied, newer than this code knows (its latest is "
                    f"{migrations.migrations[-1].file}): refusing to run on a database of a newer "
                    "release; run that release, or restore a backup made for this one"
                )
            raise MigrationError(f"{where}: has migration {label} applied, which {migrations.folder} lacks")
        if row.checksum != known.checksum:
            raise ChecksumMismatch(
                f"{known.file}: changed after it was applied to {where} (checksum {row.checksum[:12]}… "
                f"recorded, {known.checksum[:12]}… now); restore the file and add a new migration instead"
            )
        done.add(row.version)
    pending = tuple(m for m in migrations.migrations if m.version not in done)
    if pending and done and pending[0].version < max(done):
        later = migrations.migrations[max(done) - 1]
        raise MigrationError(
            f"{pending[0].file}: pending on {where}, but the later {later.label} is already applied; "
            "renumber it after the latest"
        )
    return pending


# -- SQLite ----------------------------------------------------------------------------------------


def enable_wal(db: sqlite3.Connection, timeout: float = 10.0) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another process holds the lock: on a new file
    that several processes open at once, switching the journal mode needs an exclusive lock and
    SQLite answers "database is locked" at once rather than waiting on the busy timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def status_sqlite(db: sqlite3.Connection, migrations: Migrations) -> Status:
    """What is applied and what is pending (reads only; `plan` checks it)."""
    _autocommit(db)
    db.execute("BEGIN")
    try:
        return _read(db, migrations)
    finally:
        db.execute("ROLLBACK")


def migrate_sqlite(db: sqlite3.Connection, migrations: Migrations, mode: str = "auto") -> list[Step]:
    """Bring the database to the code's schema. `auto`: apply what is pending, each migration in
    its own BEGIN IMMEDIATE transaction; `check`: apply nothing and raise PendingMigrations if
    anything is pending; `off`: do nothing at all (not even the checks). `db` is in autocommit
    mode (isolation_level=None) with no transaction open. Returns what this call recorded."""
    if mode not in MODES:
        raise ValueError(f"migrate mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off":
        return []
    where = _where(db)
    st = status_sqlite(db, migrations)
    pending = plan(migrations, st.applied, where)
    if not pending:
        return []
    if mode == "check":
        raise PendingMigrations.of(where, migrations, pending)
    # A new, empty database getting its schema is routine (logged at DEBUG); an upgrade is news.
    level = logging.DEBUG if not st.applied and not st.adopt else logging.INFO
    steps: list[Step] = []
    while (step := _next_step(db, migrations, where)) is not None:
        steps.append(step)
        how = "adopted (recorded without running it)" if step.adopted else "applied"
        log.log(level, "%s: %s %s", where, step.migration.file, how)
    return steps


def _next_step(db: sqlite3.Connection, migrations: Migrations, where: str) -> Step | None:
    """Under the write lock: re-read, check, and record the next migration; None when none is left."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise MigrationError(f"{where}: cannot take the write lock to migrate: {exc}") from None
    try:
        st = _read(db, migrations)
        pending = plan(migrations, st.applied, where)
        if not pending:
            db.execute("ROLLBACK")
            return None
        mig = pending[0]
        db.execute(_TABLE_SQL)
        if st.adopt:
            _check_baseline(db, mig, where)
        else:
            for statement in sql_statements(mig.sql, mig.file):
                try:
                    db.execute(statement)
                except sqlite3.Error as exc:
                    raise MigrationError(f"{mig.file}: {exc} (on {where}; nothing of it applied)") from None
        db.execute(
            f"INSERT INTO {TABLE} (version, name, applied_at, checksum) VALUES (?,?,?,?)",
            (mig.version, mig.name, time.time(), mig.checksum),
        )
        db.execute("COMMIT")
        return Step(mig, adopted=st.adopt)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _read(db: sqlite3.Connection, migrations: Migrations) -> Status:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if TABLE not in tables:
        adopt = bool(migrations.adopt_if_table) and migrations.adopt_if_table in tables
        return Status((), migrations.migrations, adopt)
    rows = db.execute(f"SELECT version, name, applied_at, checksum FROM {TABLE} ORDER BY version")
    applied = tuple(Applied(int(v), str(n), float(a), str(c)) for v, n, a, c in rows)
    done = {a.version for a in applied}
    return Status(applied, tuple(m for m in migrations.migrations if m.version not in done))


def _check_baseline(db: sqlite3.Connection, baseline: Migration, where: str) -> None:
    """An adopted database has every table and index the baseline creates."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for statement in sql_statements(baseline.sql, baseline.file):
            scratch.execute(statement)
        wanted = _objects(scratch)
    finally:
        scratch.close()
    missing = sorted(wanted - _objects(db))
    if missing:
        names = ", ".join(f"{kind} {name}" for kind, name in missing)
        raise MigrationError(
            f"{where}: made before migrations but lacks what {baseline.file} creates ({names}); "
            "open it once with the release that made it, or start from a new database"
        )


def _objects(db: sqlite3.Connection) -> set[tuple[str, str]]:
    return {
        (kind, name)
        for kind, name in db.execute(
            "SELECT type, name FROM sqlite_master "
            "WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'"
        )
    }


def sql_statements(sql: str, file: str = "") -> Iterator[str]:
    """The statements of a script, one at a time (`executescript` would COMMIT first, so a
    migration runs statement by statement inside its transaction). Semicolons inside strings,
    comments and trigger bodies are kept: a statement ends where SQLite says it is complete."""
    parts = sql.split(";")
    buf = ""
    for part in parts[:-1]:
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if not _only_comments(buf.replace(";", " ")):
                yield buf.strip()
            buf = ""
    # What follows the last complete statement: whitespace and comments, or a missing ';'.
    if not _only_comments(buf + parts[-1]):
        raise MigrationError(f"{file or 'migration'}: the last statement does not end with ';'")


def _only_comments(text: str) -> bool:
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    return not stripped.strip()


def _autocommit(db: sqlite3.Connection) -> None:
    if db.isolation_level is not None or db.in_transaction:
        raise ValueError("migrations need a connection in autocommit mode with no open transaction")


def _where(db: sqlite3.Connection) -> str:
    for _seq, name, file in db.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) or ":memory:"
    return "database"
