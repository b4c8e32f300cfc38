"""Housekeeping jobs of the accounts domain.

`purge_expired_sessions` runs hourly on whichever worker gets it: it deletes
refresh-token families whose tokens have all expired and login-throttle
counters whose window and block are over. Both are also cleaned up on use
(a login deletes the user's expired families; an expired family presented at
refresh is deleted), so this only bounds the tables' growth. Safe to run twice.

`shop.tasks.bind_tasks` binds this blueprint under the ``accounts`` namespace.
"""

from __future__ import annotations

import logging

import procrastinate

from shop.accounts.services import purge_expired
from shop.jobs import HOUSEKEEPING_QUEUE, resources_of

__all__ = ["bp", "purge_expired_sessions"]

logger = logging.getLogger("shop.tasks")

bp = procrastinate.Blueprint()


@bp.periodic(cron="23 * * * *")
@bp.task(name="purge_expired_sessions", pass_context=True, queue=HOUSEKEEPING_QUEUE)
async def purge_expired_sessions(context: procrastinate.JobContext, timestamp: int) -> None:
    resources = resources_of(context)
    families, counters = await purge_expired(resources.session_maker, resources.settings)
    if families or counters:
        logger.info("purged %s expired refresh families and %s login counters", families, counters)
