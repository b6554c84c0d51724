"""Shared fixtures: a real, migrated database on SQLite and on PostgreSQL.

    async def test_something(database):            # storage.Database, migrated to head
        async with database.uow() as uow: ...

    def test_cli(database_url):                    # same database as a URL, for subprocesses
        subprocess.run([...], env={..., "DATABASE_URL": database_url})

Every test using them runs twice: ``[sqlite]`` (a temporary file) and ``[postgres]`` (a fresh
schema in TEST_POSTGRES_URL, dropped afterwards; marked ``postgres``). Without TEST_POSTGRES_URL
the PostgreSQL variant is skipped, unless REQUIRE_POSTGRES=1, which makes it fail instead.
Select one backend with ``-m postgres`` / ``-m "not postgres"``.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.pool import NullPool

from storage.clock import Clock, utcnow
from storage.db import create_engine, upgrade_schema, with_server_settings
from storage.uow import Database

if "libfaketime" in os.environ.get("LD_PRELOAD", ""):
    # Under libfaketime (CI's second run, the machine's clock a year ahead) with
    # FAKETIME_DONT_FAKE_MONOTONIC=1, libfaketime 0.9.10 turns the absolute-deadline
    # clock_nanosleep that time.sleep uses into EINVAL (subprocess.run(timeout=...) then fails).
    # Sleeping in select() waits the same without that call. Without FAKETIME_DONT_FAKE_MONOTONIC
    # timed lock waits never end, so that option stays.
    def _sleep(seconds: float) -> None:
        select.select([], [], [], max(0.0, seconds))

    time.sleep = _sleep

# Property tests look for new counter-examples on every local run; CI (HYPOTHESIS_PROFILE=ci)
# runs the same fixed examples each time, so a finding surfaces on a developer's machine and
# main's CI stays repeatable.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

POSTGRES_URL_ENV = "TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "REQUIRE_POSTGRES"

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_base_url() -> str:
    """TEST_POSTGRES_URL, or skip (fail when REQUIRE_POSTGRES=1)."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        message = f"{POSTGRES_URL_ENV} is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {message}", pytrace=False)
        pytest.skip(message)
    return url


async def _drop_schema(base_url: str, schema: str) -> None:
    admin = create_engine(base_url, poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            # Connections left open by the test (or its subprocesses) would block DROP SCHEMA.
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
            )
            await conn.exec_driver_sql("SET lock_timeout = '10s'")
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.commit()
    finally:
        await admin.dispose()


@contextlib.asynccontextmanager
async def fresh_database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """URL of a new empty database: ``backend`` is "sqlite" (file in tmp_path) or "postgres"."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'test-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return

    base_url = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            await conn.commit()
    finally:
        await admin.dispose()
    try:
        # search_path makes every connection (also of subprocesses given this URL) use the schema;
        # application_name lets the teardown find leftover connections.
        yield with_server_settings(base_url, search_path=schema, application_name=schema)
    finally:
        await _drop_schema(base_url, schema)


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty database (no tables), on each backend."""
    async with fresh_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A URL of a database migrated to head (same backends as ``database``)."""
    await upgrade_schema(empty_database_url)
    return empty_database_url


@pytest.fixture
def clock() -> Clock:
    """The program's clock for ``database``: the machine's. A module that moves time by hand
    overrides this fixture (``return tests.fakes.clock.Clock()``) and hands the same clock to
    its services, so rows are stamped by the clock that decides what is due."""
    return utcnow


@pytest.fixture
async def database(database_url: str, clock: Clock) -> AsyncIterator[Database]:
    """A ``storage.Database`` on a migrated database, on ``clock``; disposed after the test."""
    db = Database.from_url(database_url, clock=clock)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def postgres_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """PostgreSQL only (mark the test ``@pytest.mark.postgres``): URL of a migrated fresh schema."""
    async with fresh_database_url("postgres", tmp_path) as url:
        await upgrade_schema(url)
        yield url
