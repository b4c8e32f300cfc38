"""A database change and the job it causes commit together or not at all.

Order creation and shipping rely on this: `shop.jobs.defer` runs Procrastinate's
defer on the request's SQLAlchemy transaction.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from shop.accounts.models import User
from shop.jobs import defer
from tests.support.factories import UserFactory


async def _counts(session_maker) -> tuple[int, int]:
    async with session_maker() as session:
        users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        jobs = (
            await session.execute(
                text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'orders:generate_invoice'"
                )
            )
        ).scalar_one()
    return users, jobs


async def test_change_and_job_commit_together(session_maker):
    async with session_maker() as session, session.begin():
        session.add(UserFactory.build())
        await session.flush()
        job_id = await defer(session, "orders:generate_invoice", order_id=41)

    assert await _counts(session_maker) == (1, 1)
    async with session_maker() as session:
        row = (
            await session.execute(
                text("SELECT queue_name, status, args FROM procrastinate_jobs WHERE id = :id"),
                {"id": job_id},
            )
        ).one()
    assert row.queue_name == "invoices"
    assert row.status == "todo"
    assert row.args == {"order_id": 41}


async def test_change_and_job_roll_back_together(session_maker):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with session_maker() as session, session.begin():
            session.add(UserFactory.build())
            await session.flush()
            await defer(session, "orders:generate_invoice", order_id=42)
            raise Boom

    assert await _counts(session_maker) == (0, 0)
