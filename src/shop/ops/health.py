"""Liveness and readiness.

``/health/live`` answers while the process can serve at all. ``/health/ready``
checks what serving needs: the database and the job queue (503 naming the part
that is down) and the cache (reported as ``degraded`` but still 200: the shop
serves correctly from PostgreSQL without memcached).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from sqlalchemy import text

_CHECK_TIMEOUT = 2.0


class Check(msgspec.Struct):
    status: str
    """``ok``, ``degraded`` or ``down``."""
    detail: str | None = None


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, Check]


class Liveness(msgspec.Struct):
    status: str


async def _database(state: State) -> Check:
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return Check("ok")


# Workers beat every 5 s (shop.jobs.HEARTBEAT_SECONDS): one silent for three beats is gone.
# A killed worker keeps its row until another worker prunes it, so only fresh beats count.
_LIVE_WORKERS = text(
    "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - interval '15 seconds'"
)


async def _queue(state: State) -> Check:
    async with state.engine.connect() as conn:
        workers = (await conn.execute(_LIVE_WORKERS)).scalar_one()
    return Check("ok", f"{workers} active worker(s)")


async def _cache(state: State) -> Check:
    if await state.cache.ping():
        return Check("ok")
    return Check("degraded", "memcached unreachable; serving from the database")


async def _run(check: Any, state: State) -> Check:
    try:
        result: Check = await asyncio.wait_for(check(state), _CHECK_TIMEOUT)
        return result
    except Exception as exc:
        return Check("down", f"{type(exc).__name__}: {str(exc)[:200]}")


class HealthController(Controller):
    path = "/health"
    tags = ["operations"]
    opt = {"exclude_from_auth": True}
    security = [{}]  # public: overrides the app-wide bearer requirement in OpenAPI

    @get("/live", summary="Liveness probe", cache_control=None)
    async def live(self) -> Liveness:
        return Liveness("ok")

    @get(
        "/ready",
        summary="Readiness probe: database, queue and cache",
        responses={503: ResponseSpec(Readiness, description="Database or queue is down")},
    )
    async def ready(self, state: State) -> Response[Readiness]:
        database, queue, cache = await asyncio.gather(
            _run(_database, state), _run(_queue, state), _run(_cache, state)
        )
        checks = {"database": database, "queue": queue, "cache": cache}
        if database.status == "down" or queue.status == "down":
            down = [name for name, check in checks.items() if check.status == "down"]
            return Response(Readiness("down: " + ", ".join(down), checks), status_code=503)
        overall = "ok" if cache.status == "ok" else "degraded"
        return Response(Readiness(overall, checks), status_code=200)
