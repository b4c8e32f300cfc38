"""The console's audit trail: every change a staff member makes here, with before/after values.

Entries are written in the same transaction as the change they describe (so
a refused change leaves no entry) and shown on the changed object's page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.console.models import AuditEntry

__all__ = ["Entry", "entries_for", "record"]


async def record(
    session: AsyncSession,
    *,
    actor_id: int,
    action: str,
    object_type: str,
    object_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor_id=actor_id,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
        )
    )
    await session.flush()


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    actor: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def entries_for(
    session: AsyncSession, object_type: str, object_id: object, limit: int = 50
) -> list[Entry]:
    """The newest entries about one object, with the acting staff member's username."""
    rows = await session.execute(
        select(AuditEntry, User.username)
        .join(User, User.id == AuditEntry.actor_id)
        .where(AuditEntry.object_type == object_type, AuditEntry.object_id == str(object_id))
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return [
        Entry(at=a.at, actor=username, action=a.action, before=a.before, after=a.after)
        for a, username in rows
    ]
