"""What the shop relies on in Procrastinate beyond its public API, and why.

* ``DEFER_JOBS_QUERY`` (``procrastinate.sql.queries["defer_jobs"]``): Procrastinate has no
  asyncpg connector, so `shop.jobs.ShopConnector` recognises this query when a task is
  deferred on a SQLAlchemy session and runs the equivalent itself, in the request's
  transaction (a job exists if and only if the change that caused it committed).
* ``procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[])``: the SQL function that
  query calls. The session path above and the checkout statement
  (``orders/stock.py``, which inserts an order and its invoice job in one
  statement) call it directly. Procrastinate versions its SQL functions (``_v1``): a new
  version would come with a migration of ours.
* ``procrastinate_retry_job_v2(job_id, retry_at, new_priority, new_queue_name, new_lock)``
  (`RETRY_JOB_FUNCTION`): the SQL function Procrastinate's ``JobManager.retry_job_by_id_async``
  runs. `shop.queue` calls it on the request's session, so a staff retry commits with the
  console's audit entry (Procrastinate's manager would run it on a connection of its own).
* `forget_external_pool`: ``PsycopgConnector`` keeps a pool it was given after closing (it
  is not its to close), so a second worker in the same process (tests, `shop dev`, the
  worker reconnecting after a database restart) would get the closed pool. Setting the
  private ``_async_pool`` back to None makes the next ``open_async(pool=...)`` take the new
  one.

tests/platform/test_compat_procrastinate.py checks each against the installed library and schema;
pyproject.toml bounds procrastinate's version.
"""

from __future__ import annotations

from typing import Any

from procrastinate import sql as pq_sql

__all__ = [
    "DEFER_JOBS_FUNCTION",
    "DEFER_JOBS_QUERY",
    "JOB_TO_DEFER_FIELDS",
    "JOB_TO_DEFER_TYPE",
    "RETRY_JOB_ARGUMENTS",
    "RETRY_JOB_FUNCTION",
    "forget_external_pool",
]

DEFER_JOBS_QUERY: str = pq_sql.queries["defer_jobs"]

DEFER_JOBS_FUNCTION = "procrastinate_defer_jobs_v1"
JOB_TO_DEFER_TYPE = "procrastinate_job_to_defer_v1"
JOB_TO_DEFER_FIELDS = (
    "queue_name",
    "task_name",
    "priority",
    "lock",
    "queueing_lock",
    "args",
    "scheduled_at",
)
"""The composite type's attributes, in order (a ROW(...) literal relies on the order)."""

RETRY_JOB_FUNCTION = "procrastinate_retry_job_v2"
RETRY_JOB_ARGUMENTS = ("job_id", "retry_at", "new_priority", "new_queue_name", "new_lock")
"""Its parameters, in order (`shop.queue` passes them positionally)."""


def forget_external_pool(connector: Any) -> None:
    connector._async_pool = None
