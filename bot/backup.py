"""`python -m bot backup PATH`: a consistent copy of the SQLite database, taken while the bot runs.

SQLite: sqlite3's online backup API copies the database page by page inside a read transaction,
so the copy is consistent even while the bot writes (WAL mode); the copy is checked
(`PRAGMA integrity_check`), written next to PATH and renamed into place, so PATH is either the
old file or a complete new one. PATH may be a folder: the file is then named
`bot-YYYYmmdd-HHMMSS.sqlite3`. An existing file is not overwritten without --force.

PostgreSQL: a consistent copy is pg_dump's job; the command to run is printed and the exit
status is 3 (nothing was copied).

Exit status: 0 copied, 1 failed, 2 bad arguments or configuration, 3 PostgreSQL (see above).

Restore (SQLite): stop the bot, copy the backup over the database file (delete any `-wal` and
`-shm` files next to it), start the bot. It migrates the schema forward if the backup is older.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from storage.clock import Clock, utcnow

__all__ = ["BackupResult", "backup_sqlite", "main", "pg_dump_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_POSTGRES = 0, 1, 2, 3


@dataclass(frozen=True)
class BackupResult:
    path: Path
    tables: dict[str, int]
    size_bytes: int


class BackupError(Exception):
    pass


def _table_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {
        name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
        for name in names
    }


def backup_sqlite(
    source: Path,
    target: Path,
    *,
    force: bool = False,
    pages_per_step: int = 1024,
    clock: Clock = utcnow,
) -> BackupResult:
    """Copy the SQLite database `source` to `target` (a file, or a folder to put it in)."""
    if not source.exists():
        raise BackupError(f"the database file {source} does not exist")
    if target.is_dir():
        stamp = clock().strftime("%Y%m%d-%H%M%S")
        target = target / f"bot-{stamp}.sqlite3"
    if target.resolve() == source.resolve():
        raise BackupError("the backup cannot be the database file itself")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; choose another path or pass --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()

    # Read-only URI: the backup never writes to the live database.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout = 30000")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=pages_per_step)
            # A self-contained file: no WAL next to it.
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
            tables = _table_counts(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise BackupError(f"SQLite error: {exc}") from exc
    finally:
        src.close()
    os.replace(partial, target)
    return BackupResult(target, tables, target.stat().st_size)


def pg_dump_command(url: str, target: str) -> str:
    """The pg_dump invocation for a PostgreSQL URL (password via PGPASSWORD, never shown)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    parts = ["pg_dump", "--format=custom", "--no-owner", "--no-privileges"]
    if parsed.host:
        parts += ["--host", parsed.host]
    if parsed.port:
        parts += ["--port", str(parsed.port)]
    if parsed.username:
        parts += ["--username", parsed.username]
    options = parsed.query.get("options")
    if isinstance(options, str) and "search_path=" in options:
        schema = options.split("search_path=", 1)[1].split()[0]
        parts += ["--schema", schema]
    parts += ["--file", target, parsed.database or ""]
    command = " ".join(shlex.quote(p) for p in parts)
    if parsed.password:
        command = "PGPASSWORD=*** " + command
    return command


def _database_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    from bot.config import ConfigError, load_settings

    try:
        return load_settings().database_url
    except ConfigError:
        # Another setting is wrong; the backup only needs DATABASE_URL.
        from storage.db import default_database_url

        return os.environ.get("DATABASE_URL") or default_database_url()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot backup",
        description="Consistent copy of the SQLite database (PostgreSQL: prints the pg_dump "
        "command).",
    )
    parser.add_argument("path", help="backup file, or a folder to put a timestamped file in")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--database-url", help="default: DATABASE_URL from the environment/.env")
    args = parser.parse_args(argv)

    from storage.db import validate_database_url
    from storage.errors import InvalidDatabaseURL

    raw = _database_url(args.database_url)
    try:
        url = validate_database_url(raw)
    except InvalidDatabaseURL as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if url.get_backend_name() == "postgresql":
        command = pg_dump_command(url.render_as_string(hide_password=False), args.path)
        print(
            "DATABASE_URL is PostgreSQL: make the backup with pg_dump (consistent while the bot "
            "runs), e.g.\n\n  " + command + "\n\nRestore into an empty database with\n\n  "
            "pg_restore --no-owner --dbname <database> " + shlex.quote(args.path),
            file=sys.stderr,
        )
        return EXIT_POSTGRES
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        print(f"cannot back up the SQLite database {database!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = backup_sqlite(Path(database).expanduser(), Path(args.path), force=args.force)
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    rows = sum(result.tables.values())
    print(
        f"backup written to {result.path} ({result.size_bytes} bytes, "
        f"{len(result.tables)} tables, {rows} rows)"
    )
    for name, count in result.tables.items():
        print(f"  {name}: {count}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
