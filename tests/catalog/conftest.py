"""Helpers for catalogue tests: callers with tokens."""

from __future__ import annotations

import pytest
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
