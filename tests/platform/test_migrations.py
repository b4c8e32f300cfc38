"""The migrations build exactly the schema the models describe, and re-running them is harmless."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from shop.migrations import upgrade_async
from shop.models import metadata


def _include_name(name, type_, parent_names):
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


async def test_models_match_migrations(engine):
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(
                    sync, opts={"include_name": _include_name, "compare_type": True}
                ),
                metadata,
            )
        )

    assert diff == []


async def test_upgrade_is_idempotent(settings, engine):
    await upgrade_async(settings.database.url)
    await upgrade_async(settings.database.url)

    async with engine.connect() as conn:
        versions = (
            (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        )
        queue = (
            await conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"))
        ).scalar_one()
    assert len(versions) == 1
    assert queue is True
