"""`python -m bot backup PATH`: a consistent copy of the SQLite database that opens and has the
same rows; for PostgreSQL the pg_dump command to use, and a non-zero exit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.backup import BackupError, backup_sqlite, main, pg_dump_command
from bot.services.users import UserService
from storage.uow import Database

ROOT = Path(__file__).resolve().parents[2]


async def _fill(database: Database, clerks: int = 20) -> None:
    users = UserService(database)
    for n in range(clerks):
        user = await users.get_or_register("telegram", str(7000 + n), display_name=f"Clerk {n}")
        async with database.uow() as uow:
            await uow.questions.add(user_id=user.id, text=f"pitanje {n}", decision="escalate")
            await uow.commit()


def _rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    assert database
    return Path(database)


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> tuple[Database, Path]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.sqlite3'}"
    database = Database.from_url(url)
    await database.upgrade()
    await _fill(database)
    yield database, _sqlite_file(url)  # type: ignore[misc]
    await database.dispose()


async def test_backup_opens_and_has_the_same_rows(
    sqlite_database: tuple[Database, Path], tmp_path: Path
) -> None:
    _database, live = sqlite_database
    target = tmp_path / "backups" / "copy.sqlite3"
    result = backup_sqlite(live, target)

    assert result.path == target and target.exists()
    assert not Path(f"{target}-wal").exists()  # self-contained
    for table in ("users", "questions", "alembic_version"):
        if table == "alembic_version":
            with sqlite3.connect(target) as c, sqlite3.connect(live) as o:
                q = "SELECT version_num FROM alembic_version"
                assert c.execute(q).fetchall() == o.execute(q).fetchall()
            continue
        assert _rows(target, table) == _rows(live, table)
    assert result.tables["questions"] == 20
    # The copy is a working database for the bot.
    copy = Database.from_url(f"sqlite+aiosqlite:///{target}")
    try:
        async with copy.uow() as uow:
            assert len(await uow.questions.recent(100)) == 20
    finally:
        await copy.dispose()


async def test_backup_while_the_bot_writes_is_consistent(
    sqlite_database: tuple[Database, Path], tmp_path: Path
) -> None:
    database, live = sqlite_database
    stop = asyncio.Event()

    async def keep_writing() -> int:
        written = 0
        users = UserService(database)
        user = await users.get_or_register("telegram", "8000", display_name="Writer")
        while not stop.is_set():
            async with database.uow() as uow:
                await uow.questions.add(user_id=user.id, text="x" * 2000, decision="escalate")
                await uow.commit()
            written += 1
            await asyncio.sleep(0)
        return written

    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.2)
    result = await asyncio.to_thread(
        backup_sqlite, live, tmp_path / "hot.sqlite3", pages_per_step=5
    )
    stop.set()
    assert await writer > 0
    with sqlite3.connect(result.path) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every question in the copy belongs to a user in the copy (a consistent snapshot).
        orphans = copy.execute(
            "SELECT count(*) FROM questions WHERE user_id NOT IN (SELECT id FROM users)"
        ).fetchone()[0]
        assert orphans == 0
        assert copy.execute("SELECT count(*) FROM questions").fetchone()[0] >= 20


async def test_existing_backup_is_not_overwritten_without_force(
    sqlite_database: tuple[Database, Path], tmp_path: Path
) -> None:
    _database, live = sqlite_database
    target = tmp_path / "copy.sqlite3"
    target.write_text("older backup")
    with pytest.raises(BackupError, match="exists"):
        backup_sqlite(live, target)
    assert target.read_text() == "older backup"
    backup_sqlite(live, target, force=True)
    assert len(_rows(target, "questions")) == 20


async def test_folder_target_gets_a_timestamped_file(
    sqlite_database: tuple[Database, Path], tmp_path: Path
) -> None:
    _database, live = sqlite_database
    folder = tmp_path / "nightly"
    folder.mkdir()
    result = backup_sqlite(live, folder)
    assert result.path.parent == folder and result.path.name.startswith("bot-")


def test_cli_backs_up_the_configured_database(
    sqlite_database: tuple[Database, Path], tmp_path: Path
) -> None:
    _database, live = sqlite_database
    target = tmp_path / "cli.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ADMIN_IDS")},
        "DATABASE_URL": f"sqlite+aiosqlite:///{live}",
        "ADMIN_IDS": "not-a-number",  # another bad setting does not stop a backup
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "backup", str(target)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "backup written" in result.stdout
    assert _rows(target, "users") == _rows(live, "users")


def test_missing_database_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            str(tmp_path / "x.sqlite3"),
            "--database-url",
            f"sqlite+aiosqlite:///{tmp_path / 'nothing.sqlite3'}",
        ]
    )
    assert code == 1
    assert "does not exist" in capsys.readouterr().err


def test_postgres_prints_the_pg_dump_command_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "/backups/bot.dump",
            "--database-url",
            "postgresql+asyncpg://bot:s3cret@db.internal:5433/bot",
        ]
    )
    assert code == 3
    err = capsys.readouterr().err
    assert "pg_dump --format=custom" in err
    assert "--host db.internal --port 5433 --username bot" in err
    assert "--file /backups/bot.dump bot" in err
    assert "s3cret" not in err and "PGPASSWORD=***" in err
    assert "pg_restore" in err


def test_pg_dump_command_keeps_the_schema_of_a_search_path() -> None:
    command = pg_dump_command(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dt_1",
        "out.dump",
    )
    assert "--schema t_1" in command


def test_bad_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["x", "--database-url", "mysql://nope"]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err
