"""A statement that carries the small writes waiting to ride along (`Database.carry`).

On PostgreSQL a unit of work of one write (`Database.uow(one_write=True)`) runs in autocommit:
its statement commits by itself. The writes waiting to be carried (the inbox's done marks)
would then be a statement of their own; instead they ride inside the one statement as a
data-modifying CTE (``WITH done AS (UPDATE ...) INSERT ...``): one round trip for both,
committed together or not at all. Repositories that run such a hot statement (a clerk's
question) execute it through `execute_carrying`; the unit of work puts its carrier in the
session's ``info`` (`CARRIER`) when it can carry.

Kept apart from storage.uow, which imports the repositories that use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert

CARRIER = "storage_carrier"  # session.info key

# (connection, statement, parameters) -> the statement's result, the carried writes folded in
Carrier = Callable[[AsyncConnection, Insert, dict[str, Any]], Awaitable[CursorResult[Any]]]


async def execute_carrying(
    session: AsyncSession, statement: Insert, parameters: dict[str, Any]
) -> CursorResult[Any]:
    """Run `statement` on the session's connection, with the carried writes folded in when
    the unit of work can (PostgreSQL autocommit), otherwise as it is (they go at commit)."""
    connection = await session.connection()  # Core: no ORM execution machinery
    carrier: Carrier | None = session.info.get(CARRIER)
    if carrier is None:
        return await connection.execute(statement, parameters)
    return await carrier(connection, statement, parameters)
