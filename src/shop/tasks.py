"""The composition point of background jobs: every domain's tasks bound to the job platform.

`shop.jobs` knows no domain; each domain exports a `procrastinate.Blueprint`. The processes
that defer or run jobs bind them here before they do: `create_app` (the API defers),
``shop worker`` and ``shop dev`` (they run jobs). A name is ``<namespace>:<task>``, e.g.
``orders:generate_invoice``; tests/platform/test_job_platform.py checks that every name
deferred anywhere in the code is bound here.
"""

from __future__ import annotations

import procrastinate

from shop import jobs
from shop.accounts import tasks as accounts_tasks
from shop.orders import tasks as orders_tasks

__all__ = ["BLUEPRINTS", "bind_tasks", "warm_up_cpu_process", "warm_up_worker"]

BLUEPRINTS: dict[str, procrastinate.Blueprint] = {
    "orders": orders_tasks.bp,
    "accounts": accounts_tasks.bp,
}


def bind_tasks() -> procrastinate.App:
    """Bind every domain's blueprint (safe to call again) and return the job app."""
    for namespace, blueprint in BLUEPRINTS.items():
        jobs.bind(blueprint, namespace)
    return jobs.app


async def warm_up_worker() -> None:
    """What a worker prepares once before its first job (``shop worker``, ``shop dev``)."""
    await orders_tasks.warm_up()


def warm_up_cpu_process() -> None:
    """What each of a worker's CPU processes (`shop.cpu`) prepares once, when it starts."""
    orders_tasks.warm_up_process()
