"""Storage layer on real SQLite and real PostgreSQL (see conftest.py for the fixtures)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from storage import (
    Database,
    InvalidDatabaseURL,
    StorageUnavailable,
    User,
    create_engine,
    current_revision,
    default_database_url,
    downgrade_schema,
    head_revision,
    upgrade_schema,
    validate_database_url,
)
from storage.models import Base

BELGRADE = ZoneInfo("Europe/Belgrade")
APP_TABLES = {"users", "questions", "feedback", "processed_updates"}


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def make_user(database: Database, external_id: str = "1001", **fields: object) -> User:
    async with database.uow() as uow:
        user = await uow.users.add(
            User(channel="telegram", external_id=external_id, display_name="Ana", **fields)
        )
        await uow.commit()
        return user


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- migrations


async def test_migrations_create_every_table_at_head(empty_database_url: str) -> None:
    assert await current_revision(empty_database_url) is None

    await upgrade_schema(empty_database_url)

    assert await current_revision(empty_database_url) == head_revision()
    assert head_revision() is not None
    assert await table_names(empty_database_url) >= APP_TABLES


async def test_models_and_migrations_describe_the_same_schema(database: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    async with Database.from_url(database_url) as db:
        await make_user(db)

    await downgrade_schema(database_url, "base")
    assert await current_revision(database_url) is None
    assert not APP_TABLES & await table_names(database_url)

    await upgrade_schema(database_url)
    assert await current_revision(database_url) == head_revision()
    async with Database.from_url(database_url) as db:
        await make_user(db)  # the schema works again, and is empty
        async with db.uow() as uow:
            assert await uow.users.count_active() == 1


async def test_several_instances_can_migrate_at_the_same_time(empty_database_url: str) -> None:
    await asyncio.gather(*(upgrade_schema(empty_database_url) for _ in range(3)))
    await upgrade_schema(empty_database_url)  # and again: nothing to do

    assert await current_revision(empty_database_url) == head_revision()


async def test_in_memory_sqlite_database_can_be_migrated_through_its_engine() -> None:
    async with Database.from_url("sqlite+aiosqlite://") as db:
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        await make_user(db)


def test_migration_cli_works_in_a_subprocess_from_another_directory(
    database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "storage", "current"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == head_revision()


# --------------------------------------------------------------------------- users


async def test_same_external_id_is_one_user_per_channel(database: Database) -> None:
    first = await make_user(database, "42")

    with pytest.raises(IntegrityError):
        async with database.uow() as uow:
            await uow.users.add(User(channel="telegram", external_id="42"))

    async with database.uow() as uow:
        viber = await uow.users.add(User(channel="viber", external_id="42"))
        again, created = await uow.users.get_or_create("telegram", 42, display_name="Other")
        await uow.commit()

    assert viber.id != first.id
    assert (again.id, created, again.display_name) == (first.id, False, "Ana")


async def test_database_errors_do_not_carry_bound_parameters(database: Database) -> None:
    """Error tracebacks end up in logs: they must not hold clerk text or names."""
    import traceback

    await make_user(database, "43")
    secret = "Tajna Anić JMBG 0101990710006"
    with pytest.raises(IntegrityError) as caught:
        async with database.uow() as uow:
            await uow.users.add(User(channel="telegram", external_id="43", display_name=secret))
    logged = "".join(traceback.format_exception(caught.value))
    assert "Tajna" not in logged and "0101990710006" not in logged
    assert database.engine.sync_engine.hide_parameters


async def test_new_user_gets_defaults_and_is_found_by_channel_id(database: Database) -> None:
    async with database.uow() as uow:
        user, created = await uow.users.get_or_create("telegram", 7, display_name="Milan")
        await uow.commit()
    assert created

    async with database.uow() as uow:
        found = await uow.users.get_by_external("telegram", "7")
        assert found is not None
        assert found.id == user.id
        assert (found.language, found.role, found.active, found.onboarded) == (
            "sr-Latn",
            "clerk",
            True,
            False,
        )
        assert found.municipality is None
        assert found.services_of_interest is None
        found.services_of_interest = ["ezup", "esanduce"]
        found.municipality = "Čačak"
        await uow.commit()

    async with database.uow() as uow:
        reloaded = await uow.users.get(user.id)
        assert reloaded is not None
        assert reloaded.services_of_interest == ["ezup", "esanduce"]
        assert reloaded.municipality == "Čačak"
        assert reloaded.updated_at >= reloaded.created_at


async def test_active_users_are_listed_and_counted_with_filters(database: Database) -> None:
    async with database.uow() as uow:
        for n in range(5):
            await uow.users.add(
                User(
                    channel="telegram",
                    external_id=str(n),
                    role="mentor" if n < 2 else "clerk",
                    active=n != 4,
                    municipality="Niš" if n % 2 else "Subotica",
                )
            )
        await uow.commit()

    async with database.uow() as uow:
        active = await uow.users.list_active()
        assert [u.external_id for u in active] == ["0", "1", "2", "3"]
        assert [u.external_id for u in await uow.users.list_active(role="mentor")] == ["0", "1"]
        page = await uow.users.list_active(after_id=active[1].id, limit=1)
        assert [u.external_id for u in page] == ["2"]
        assert await uow.users.count_active() == 4
        assert await uow.users.count_active(municipality="Niš") == 2
        assert await uow.users.count_active(channel="viber") == 0


async def test_concurrent_registration_of_the_same_user_creates_one_row(
    database: Database,
) -> None:
    async def register() -> tuple[int, bool]:
        async with database.uow() as uow:
            user, created = await uow.users.get_or_create("telegram", "555")
            await asyncio.sleep(0.1)
            await uow.commit()
            return user.id, created

    results = await asyncio.gather(*(register() for _ in range(3)))

    assert len({user_id for user_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, True]


async def test_unit_of_work_without_commit_saves_nothing(database: Database) -> None:
    async with database.uow() as uow:
        await uow.users.add(User(channel="playground", external_id="local"))
        # no commit

    with pytest.raises(RuntimeError, match="boom"):
        async with database.uow() as uow:
            await uow.users.add(User(channel="playground", external_id="local"))
            raise RuntimeError("boom")

    async with database.uow() as uow:
        assert await uow.users.get_by_external("playground", "local") is None


async def test_invalid_enum_values_are_rejected(database: Database) -> None:
    with pytest.raises(ValueError, match="channel"):
        async with database.uow() as uow:
            await uow.users.add(User(channel="whatsapp", external_id="1"))
    with pytest.raises(IntegrityError):
        async with database.uow() as uow:
            await uow.users.add(User(channel="telegram", external_id="1", role="boss"))


async def test_concurrent_read_then_write_units_of_work_all_succeed(database: Database) -> None:
    # On SQLite a deferred transaction that has read and then writes after another writer
    # committed fails at once ("database is locked"); units of work must not.
    user = await make_user(database)

    async def ask(n: int) -> None:
        async with database.uow() as uow:
            await uow.questions.for_user(user.id)
            await asyncio.sleep(0.02)
            await uow.questions.add(user_id=user.id, text=f"q{n}", decision="clarify")
            await uow.commit()

    await asyncio.gather(*(ask(n) for n in range(6)))

    async with database.uow(read_only=True) as uow:
        assert len(await uow.questions.for_user(user.id, limit=100)) == 6


async def test_read_only_unit_of_work_does_not_wait_for_a_writer(database: Database) -> None:
    user = await make_user(database)
    async with database.uow() as writer:
        await writer.questions.add(user_id=user.id, text="pending", decision="answer")
        async with asyncio.timeout(5), database.uow(read_only=True) as reader:
            assert await reader.questions.for_user(user.id) == []  # sees committed data only
        await writer.commit()


async def test_an_urgent_writer_goes_before_the_queued_ones_and_a_dropped_turn_passes_on(
    tmp_path: Path,
) -> None:
    """The inbox's "answered" marks must not wait behind a burst's questions (a kill meanwhile
    would repeat those answers); a writer cancelled while waiting loses nothing for the rest."""
    order: list[str] = []
    sqlite_database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'queue.sqlite3'}")
    await sqlite_database.upgrade()

    async def write(name: str, *, urgent: bool = False) -> None:
        async with sqlite_database.uow(urgent=urgent) as uow:
            order.append(name)
            await uow.commit()

    async with sqlite_database.uow() as first:
        queued = [asyncio.create_task(write(f"q{n}")) for n in range(3)]
        cancelled = asyncio.create_task(write("cancelled"))
        await asyncio.sleep(0.05)
        urgent = asyncio.create_task(write("urgent", urgent=True))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        await first.commit()
    await asyncio.wait_for(asyncio.gather(*queued, urgent), 5)
    await sqlite_database.dispose()
    assert cancelled.cancelled()
    assert order == ["urgent", "q0", "q1", "q2"]


@pytest.mark.postgres
async def test_read_only_unit_of_work_refuses_writes_on_postgres(
    postgres_database_url: str,
) -> None:
    async with Database.from_url(postgres_database_url) as db:
        with pytest.raises(DBAPIError, match="read-only"):
            async with db.uow(read_only=True) as uow:
                await uow.users.add(User(channel="telegram", external_id="9"))


# --------------------------------------------------------------------------- time


async def test_datetimes_come_back_timezone_aware_in_utc(database: Database) -> None:
    local = datetime(2026, 3, 29, 3, 30, 15, 123456, tzinfo=BELGRADE)  # just after DST starts
    user = await make_user(database)
    async with database.uow() as uow:
        question = await uow.questions.add(
            user_id=user.id, text="pitanje", decision="answer", created_at=local
        )
        await uow.commit()

    async with database.uow() as uow:
        loaded = await uow.questions.get(question.id)
        assert loaded is not None
        assert loaded.created_at == local
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert loaded.created_at == datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)
        loaded_user = await uow.users.get(user.id)
        assert loaded_user is not None
        assert loaded_user.created_at.tzinfo is not None


async def test_naive_datetimes_are_refused(database: Database) -> None:
    user = await make_user(database)
    with pytest.raises(StatementError, match="naive datetime"):
        async with database.uow() as uow:
            await uow.questions.add(
                user_id=user.id,
                text="x",
                decision="answer",
                created_at=datetime(2026, 1, 1, 12, 0),
            )


# --------------------------------------------------------------------------- updates


async def test_redelivered_update_is_handled_once(database: Database) -> None:
    async with database.uow() as uow:
        assert await uow.processed_updates.claim("telegram", 900_000_001) is True
        await uow.commit()

    async with database.uow() as uow:
        assert await uow.processed_updates.claim("telegram", 900_000_001) is False
        assert await uow.processed_updates.claim("viber", 900_000_001) is True  # other channel
        assert await uow.processed_updates.claim("viber", 5_123_456_789_012_345_678) is True
        await uow.commit()


async def test_claim_of_a_failed_update_is_rolled_back_so_redelivery_is_handled(
    database: Database,
) -> None:
    with pytest.raises(RuntimeError):
        async with database.uow() as uow:
            assert await uow.processed_updates.claim("telegram", 77)
            raise RuntimeError("handler crashed before commit")

    async with database.uow() as uow:
        assert await uow.processed_updates.claim("telegram", 77) is True
        assert await uow.processed_updates.is_processed("telegram", 77)


async def test_concurrent_claims_of_one_update_give_exactly_one_winner(database: Database) -> None:
    async def handle() -> bool:
        async with database.uow() as uow:
            claimed = await uow.processed_updates.claim("telegram", 31337)
            await asyncio.sleep(0.1)  # the others are now waiting for this transaction
            await uow.commit()
            return claimed

    results = await asyncio.gather(*(handle() for _ in range(4)))

    assert sorted(results) == [False, False, False, True]


async def test_old_processed_updates_are_pruned(database: Database) -> None:
    async with database.uow() as uow:
        await uow.processed_updates.claim("telegram", 1)
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.processed_updates.prune(datetime.now(UTC) - timedelta(days=1)) == 0
        assert await uow.processed_updates.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.processed_updates.claim("telegram", 1) is True


# --------------------------------------------------------------------------- questions


async def test_second_tap_on_feedback_replaces_the_first(database: Database) -> None:
    user = await make_user(database)
    async with database.uow() as uow:
        question = await uow.questions.add(
            user_id=user.id, text="kako", decision="answer", entry_id="ezup-login"
        )
        first = await uow.feedback.record(question.id, user.id, "up")
        await uow.commit()

    async with database.uow() as uow:
        second = await uow.feedback.record(question.id, user.id, "down")
        await uow.commit()

    assert second.id == first.id
    assert second.value == "down"
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    async with database.uow() as uow:
        stored = await uow.feedback.get(question.id, user.id)
        assert stored is not None
        assert stored.value == "down"
        now = datetime.now(UTC)
        assert await uow.feedback.counts(now - timedelta(hours=1), now + timedelta(hours=1)) == {
            "up": 0,
            "down": 1,
        }
    with pytest.raises(ValueError, match="feedback value"):
        async with database.uow() as uow:
            await uow.feedback.record(question.id, user.id, "meh")


async def test_questions_are_counted_by_decision_between_dates(database: Database) -> None:
    user = await make_user(database)
    other = await make_user(database, "2002")
    day = datetime(2026, 11, 2, tzinfo=BELGRADE)
    asked = [
        (day - timedelta(minutes=1), "answer", "ezup-login"),  # the day before
        (day, "answer", "ezup-login"),
        (day + timedelta(hours=3), "clarify", "eid-cert"),
        (day + timedelta(hours=5), "answer", "ezup-login"),
        (day + timedelta(hours=23, minutes=59), "escalate", None),
        (day + timedelta(days=1), "escalate", None),  # the day after (end is exclusive)
    ]
    async with database.uow() as uow:
        for n, (when, decision, entry) in enumerate(asked):
            await uow.questions.add(
                user_id=other.id if n == 2 else user.id,
                text=f"pitanje {n}",
                decision=decision,
                entry_id=entry,
                score=0.5,
                candidates=[entry] if entry else [],
                created_at=when,
            )
        await uow.commit()

    async with database.uow() as uow:
        counts = await uow.questions.counts_by_decision(day, day + timedelta(days=1))
        assert counts == {"answer": 2, "clarify": 1, "escalate": 1}
        assert await uow.questions.counts_by_decision(
            day.replace(year=2020), day.replace(year=2021)
        ) == {
            "answer": 0,
            "clarify": 0,
            "escalate": 0,
        }
        top = await uow.questions.top_entries(day, day + timedelta(days=1))
        assert top == [("ezup-login", 2), ("eid-cert", 1)]
        mine = await uow.questions.for_user(user.id, limit=2)
        assert [q.text for q in mine] == ["pitanje 5", "pitanje 4"]
        recent = await uow.questions.recent(limit=10, decision="escalate")
        assert [q.text for q in recent] == ["pitanje 5", "pitanje 4"]
        assert recent[1].candidates == []
        stored = await uow.questions.get(mine[0].id)
        assert stored is not None
        assert stored.score == 0.5


async def test_deleting_a_user_deletes_their_questions_and_feedback(database: Database) -> None:
    user = await make_user(database)
    async with database.uow() as uow:
        question = await uow.questions.add(user_id=user.id, text="x", decision="escalate")
        await uow.feedback.record(question.id, user.id, "down")
        await uow.commit()
    async with database.uow() as uow:
        loaded = await uow.users.get(user.id)
        await uow.session.delete(loaded)
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.questions.get(question.id) is None
        assert await uow.feedback.get(question.id, user.id) is None


# --------------------------------------------------------------------------- failures


async def test_database_down_surfaces_as_storage_unavailable() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test"
    async with Database.from_url(url) as db:
        with pytest.raises(StorageUnavailable) as caught:
            async with db.uow() as uow:
                await uow.users.get_by_external("telegram", "1")
        assert isinstance(caught.value.__cause__, OSError)
        with pytest.raises(StorageUnavailable):
            await db.ping()
    with pytest.raises(StorageUnavailable):
        await upgrade_schema(url)


async def test_unopenable_sqlite_file_surfaces_as_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory.sqlite3").mkdir()
    async with Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/a-directory.sqlite3") as db:
        with pytest.raises(StorageUnavailable):
            async with db.uow() as uow:
                await uow.users.get(1)
    # aiosqlite stops the worker thread of a failed connect without waiting for it; let it end
    # while the event loop is still open (otherwise: "Event loop is closed" in that thread).
    for _ in range(200):
        if not any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            break
        await asyncio.sleep(0.01)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; ``stop()`` simulates the database going away."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    parsed = make_url(url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    try:
        yield proxy, parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()


@pytest.mark.postgres
async def test_service_recovers_when_the_database_comes_back(postgres_database_url: str) -> None:
    async with proxied(postgres_database_url) as (proxy, url), Database.from_url(url) as db:
        await make_user(db, "1")

        await proxy.stop()  # database restarts: pooled connections die, new ones are refused
        with pytest.raises(StorageUnavailable):
            async with db.uow() as uow:
                await uow.users.get_by_external("telegram", "1")
        with pytest.raises(StorageUnavailable):
            await db.ping()

        await proxy.start()  # back on the same port
        async with db.uow() as uow:
            assert await uow.users.get_by_external("telegram", "1") is not None
            await uow.users.add(User(channel="telegram", external_id="2"))
            await uow.commit()
        async with db.uow() as uow:
            assert await uow.users.count_active() == 2


@pytest.mark.postgres
async def test_a_connection_that_idled_is_pinged_and_replaced_after_a_restart(
    postgres_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only connections idle for over `PING_AFTER_IDLE` are pinged at checkout (a round trip
    saved on every busy one); such a connection, dead since the server restarted, is replaced
    without the unit of work noticing."""
    import storage.db

    async with proxied(postgres_database_url) as (proxy, url), Database.from_url(url) as db:
        await make_user(db, "1")
        monkeypatch.setattr(storage.db, "PING_AFTER_IDLE", 0.0)  # it has idled long enough
        await proxy.stop()  # the server restarts while the connection waits in the pool
        await proxy.start()
        async with db.uow() as uow:
            assert await uow.users.get_by_external("telegram", "1") is not None


@pytest.mark.postgres
async def test_connection_dropped_mid_transaction_is_unavailable_not_a_crash(
    postgres_database_url: str,
) -> None:
    async with proxied(postgres_database_url) as (proxy, url), Database.from_url(url) as db:
        with pytest.raises(StorageUnavailable):
            async with db.uow() as uow:
                await uow.users.add(User(channel="telegram", external_id="3"))
                await proxy.stop()
                await proxy.start()
                await uow.commit()
        async with db.uow() as uow:  # the next unit of work gets a fresh connection
            assert await uow.users.get_by_external("telegram", "3") is None


# --------------------------------------------------------------------------- URLs


def test_malformed_database_urls_are_explained() -> None:
    with pytest.raises(InvalidDatabaseURL, match="DATABASE_URL is empty"):
        validate_database_url("  ")
    with pytest.raises(InvalidDatabaseURL, match="not a valid database URL"):
        validate_database_url("bot.sqlite3")
    with pytest.raises(InvalidDatabaseURL, match="unsupported database driver 'mysql'"):
        validate_database_url("mysql://u:p@h/db")
    with pytest.raises(InvalidDatabaseURL, match="database name is missing"):
        validate_database_url("postgresql+asyncpg://postgres@127.0.0.1:5432")
    with pytest.raises(InvalidDatabaseURL, match="options"):
        validate_database_url("postgresql://h/db?options=search_path")
    with pytest.raises(InvalidDatabaseURL) as caught:
        validate_database_url("postgresql://bot:s3cret@db:port/bot")
    assert "bad port" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(InvalidDatabaseURL):
        Database.from_url("sqlite+pysqlite:///x.db")


def test_common_url_spellings_get_the_async_drivers() -> None:
    assert validate_database_url("postgres://u:p@h/db").drivername == "postgresql+asyncpg"
    assert validate_database_url("postgresql://u:p@h:6543/db").port == 6543
    assert validate_database_url("sqlite:///data/bot.sqlite3").drivername == "sqlite+aiosqlite"


def test_default_database_is_a_sqlite_file_under_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = default_database_url()
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/data/bot.sqlite3"
    assert (tmp_path / "data").is_dir()
