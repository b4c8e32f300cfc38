"""Alembic environment: runs every revision over asyncpg, each revision in its own transaction.

The URL comes from the ``sqlalchemy.url`` option that `shop.migrations.upgrade`
sets from Settings; nothing here reads the environment.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shop.models import metadata

config = context.config
target_metadata = metadata


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate ignores Procrastinate's tables: its own SQL manages them."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        # Two `shop database upgrade` at once (e.g. two containers) must not race.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(72147001)")
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `shop database upgrade`")

existing = config.attributes.get("connection")
if existing is not None:
    _run(existing)
else:
    asyncio.run(_run_async())
