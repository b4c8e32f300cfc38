"""The pgbench scripts of D4/D5, built from the app's own checkout statement.

D4/D5 must run exactly the SQL `CheckoutRepository.place` runs, so instead of a
hand-kept copy the script is made from ``_PLACE_ORDER`` at bench time: each
bind parameter is replaced by the pgbench expression (or constant) the app
would have bound. A bind left unreplaced fails loudly, so a change to the
statement cannot silently leave the ceiling measuring something else.

Like the app without an Idempotency-Key (whose route asks `shop.db` for a session
in autocommit), the script sends the statement on its own, with no BEGIN/COMMIT around it:
the same transaction the app runs.
"""

from __future__ import annotations

import re
import tempfile
from decimal import Decimal

from shop.jobs import task_job
from shop.orders.stock import _PLACE_ORDER
from shop.settings import Settings
from shop.tasks import bind_tasks

_HEADERS = {
    # D4: two distinct random products of the seeded range, one unit each.
    "spread": (
        "\\set a random(:pmin, :pmax)\n"
        "\\set b :pmin + (:a - :pmin + random(1, :pmax - :pmin)) % (:pmax - :pmin + 1)\n",
        "ARRAY[CAST(:a AS bigint), CAST(:b AS bigint)]",
        "ARRAY[1, 1]",
    ),
    # D5: one unit of the hot product.
    "hot": ("", "ARRAY[CAST(:hot AS bigint)]", "ARRAY[1]"),
}


def _literal(value: Decimal | str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def checkout_script(mode: str) -> str:
    """The pgbench script text for ``mode`` (``spread`` or ``hot``)."""
    header, ids, quantities = _HEADERS[mode]
    defaults = Settings.from_env({"SECRET_KEY": "x" * 32, "DATABASE_URL": "postgresql://x/y"})
    bind_tasks()
    job = task_job("orders:generate_invoice")
    queue, task = job.queue, job.task_name
    # pgbench reads ":word" as a variable even inside string literals, so the
    # task name's colon is kept away from letters by concatenation.
    prefix, _, rest = task.partition(":")
    replacements = {
        "CAST(:ids AS bigint[])": ids,
        "CAST(:quantities AS integer[])": quantities,
        ":user_id": "CAST(:uid AS bigint)",
        ":min_total": f"CAST({_literal(defaults.min_order_amount)} AS numeric)",
        ":max_total": "CAST('9999999999.99' AS numeric)",
        ":queue_name": _literal(queue),
        ":task_name": f"{_literal(prefix + ':')} || {_literal(rest)}" if rest else _literal(task),
        ":priority": "0",
        ":lock": "NULL",
        ":queueing_lock": "NULL",
        ":job_args": "'{}'",
        ":scheduled_at": "NULL",
    }
    sql = _PLACE_ORDER.text
    for bind in replacements:  # the lookahead keeps ":lock" from matching ":locked"
        sql = re.sub(re.escape(bind) + r"(?![A-Za-z0-9_])", lambda _m, b=bind: replacements[b], sql)
    allowed = {"a", "b", "hot", "uid", "pmin", "pmax"}
    left = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)", sql)) - allowed
    if left:
        raise RuntimeError(f"checkout statement has binds the bench does not know: {sorted(left)}")
    return (
        f"-- generated from shop.orders.stock._PLACE_ORDER ({mode})\n"
        f"{header}\\set uid random(:umin, :umax)\n{sql.strip()};\n"
    )


def write_checkout_script(mode: str) -> str:
    """Write the script to a temporary file; returns its path."""
    with tempfile.NamedTemporaryFile(
        "w", prefix=f"shop-checkout-{mode}-", suffix=".sql", delete=False
    ) as handle:
        handle.write(checkout_script(mode))
        return handle.name
