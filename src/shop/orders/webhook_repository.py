"""Queries of shipped-order webhooks: events, their delivery attempts, the staff's lists.

None of these commits: the request's session provider or the job's task owns the
transaction (``orders/webhooks.py`` holds the rules, ``orders/tasks.py`` the delivery job).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, func, select

from shop.orders.models import WebhookAttempt, WebhookEvent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["WebhookRepository"]


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_event(self, event: WebhookEvent) -> None:
        self.session.add(event)
        await self.session.flush()

    async def get_event(self, event_id: uuid.UUID, *, lock: bool = False) -> WebhookEvent | None:
        return await self.session.get(WebhookEvent, event_id, with_for_update=lock)

    async def refresh(self, event: WebhookEvent) -> None:
        """Flush the event's changes and read back what the database set (``updated_at``)."""
        await self.session.flush()
        await self.session.refresh(event)

    async def count_attempts(self, event_id: uuid.UUID) -> int:
        total = await self.session.scalar(
            select(func.count())
            .select_from(WebhookAttempt)
            .where(WebhookAttempt.event_id == event_id)
        )
        return int(total or 0)

    def add_attempt(self, attempt: WebhookAttempt) -> None:
        self.session.add(attempt)

    async def count_events(self, *conditions: ColumnElement[bool]) -> int:
        total = await self.session.scalar(
            select(func.count()).select_from(WebhookEvent).where(*conditions)
        )
        return int(total or 0)

    async def events(
        self, *conditions: ColumnElement[bool], limit: int, offset: int = 0
    ) -> list[WebhookEvent]:
        """Events newest first."""
        return list(
            (
                await self.session.scalars(
                    select(WebhookEvent)
                    .where(*conditions)
                    .order_by(WebhookEvent.created_at.desc(), WebhookEvent.event_id)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        )

    async def attempts_of(
        self, event_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, list[WebhookAttempt]]:
        """Each event's attempts in order."""
        grouped: dict[uuid.UUID, list[WebhookAttempt]] = {}
        if not event_ids:
            return grouped
        rows = await self.session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_(event_ids))
            .order_by(WebhookAttempt.event_id, WebhookAttempt.attempt)
        )
        for attempt in rows:
            grouped.setdefault(attempt.event_id, []).append(attempt)
        return grouped

    async def delete_attempts_older_than(self, days: int) -> int:
        result = await self.session.execute(
            delete(WebhookAttempt).where(WebhookAttempt.at < func.now() - timedelta(days=days))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
