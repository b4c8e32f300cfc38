"""Helpers for catalogue tests: callers with tokens, and counters of SQL and cache work."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from shop.settings import Settings
from tests.support.factories import auth_headers, make_user


@pytest.fixture
async def customer(db: AsyncSession, settings: Settings) -> dict[str, str]:
    """Headers of an authenticated customer."""
    return auth_headers(settings, await make_user(db))


@pytest.fixture
async def staff(db: AsyncSession, settings: Settings) -> dict[str, str]:
    """Headers of an authenticated staff member."""
    return auth_headers(settings, await make_user(db, is_staff=True))


@dataclass
class SqlCounter:
    statements: list[str]

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def sql(app: Litestar) -> Iterator[SqlCounter]:
    """Every SQL statement the app's engine sends while the test runs."""
    counter = SqlCounter([])
    engine = app.state.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counter.statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield counter
    event.remove(engine, "before_cursor_execute", record)
