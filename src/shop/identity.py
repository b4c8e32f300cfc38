"""Which database this process serves, as a short name the cache puts in front of every key.

Two shops may share a memcached (staging beside production, two tenants, a
restored copy next to the original). Cache keys such as ``user_2`` or
``order_detail_v<n>_1`` mean nothing without the database they were read from:
shop B would serve shop A's order 1, or authorise with shop A's ``user_2``
snapshot (issue 14). So every key, version counters included, starts with a
prefix naming the database:

* ``CACHE_KEY_PREFIX`` when the operator sets one, else
* a hash of a random id that migration ``2026_12_01_03`` writes once into the
  one-row table ``database_identity``, the database's name, and the cluster's
  system identifier (``pg_control_system()``, when the role may read it). A
  copy of a database under another name, or on another cluster, gets its own
  prefix even though the copied table holds the same id.

It is read once per process, when the cache first needs it (the app and the
worker start even while PostgreSQL is down; the cache misses until then).
A database restored in place keeps its id and name: run ``shop cache flush``
after a restore.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, Uuid, func, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base

__all__ = ["MAX_PREFIX", "DatabaseIdentity", "derive_prefix", "read_cache_key_prefix"]

MAX_PREFIX = 10
"""Characters a key prefix may take: memcached keys stop at 250, `make_key` at 240."""


class DatabaseIdentity(Base):
    """The one row naming this database (see the module docstring)."""

    __tablename__ = "database_identity"
    __table_args__ = (CheckConstraint("singleton", name="one_row"),)

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    id: Mapped[uuid.UUID] = mapped_column(Uuid, server_default=text("gen_random_uuid()"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def derive_prefix(database_id: uuid.UUID, database_name: str, cluster: str) -> str:
    """Nine base32 characters of a hash (45 bits) and a colon: ``k2v7q4xa9:``."""
    digest = hashlib.sha256(f"{cluster}/{database_name}/{database_id}".encode()).digest()
    return base64.b32encode(digest).decode()[:9].lower() + ":"


async def read_cache_key_prefix(engine: AsyncEngine) -> str:
    """The derived prefix of the database behind ``engine`` (one short transaction)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT id, current_database() FROM database_identity"))
        ).one()
        cluster = ""
        try:
            async with conn.begin_nested():
                cluster = str(
                    (
                        await conn.execute(
                            text("SELECT system_identifier FROM pg_control_system()")
                        )
                    ).scalar_one()
                )
        except Exception:  # a managed PostgreSQL may refuse it; id and name still differ
            cluster = ""
        await conn.rollback()
    return derive_prefix(row[0], row[1], cluster)
