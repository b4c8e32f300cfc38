"""`shop import django SOURCE_URL`: one pass of the import, in one transaction of the shop.

    source (read-only snapshot) ──COPY──> temp staging tables ──rules──> upserts ──> commit
                                                                                    └─> caches

1. `staging`: count and copy the four Django tables into temporary tables.
2. `rules.find_email_twins`: users whose e-mails differ only by case. Without
   a resolution (``--email-twins keep-latest``) the import stops here,
   writing nothing.
3. `rules.apply_rules`: the documented rules for odd data mark refused rows
   and list warnings.
4. `apply`: the upserts (users, products, orders, items), the history entry of
   each imported order, items the source no longer has, products it deleted.
5. With ``--invoices``: invoice jobs for imported orders that have none
   (`queue_invoices`), numbered by the job in the shop's gap-free sequence.
6. Commit (a dry run rolls back instead, so its counts are exact), move the
   identity sequences past the largest ids, then invalidate the caches:
   the product and order namespaces are bumped and the snapshot of every
   updated user is dropped, so a changed staff or active flag applies on that
   user's next request.

Any error rolls the whole transaction back: the shop is as it was.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

import psycopg
from psycopg import sql

from shop._compat.procrastinate import DEFER_JOBS_FUNCTION, JOB_TO_DEFER_TYPE
from shop.importer import apply, rules, staging
from shop.importer.report import Progress, Report
from shop.jobs import task_job

if TYPE_CHECKING:
    from shop.settings import Settings

__all__ = ["ImportOptions", "import_django", "queue_invoices"]

EmailTwins = Literal["stop", "keep-latest"]
_BATCHES = 20
"""Each table's upsert runs in this many id ranges (one transaction still) to show progress."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    dry_run: bool = False
    email_twins: EmailTwins = "stop"
    fallback_category: str = "home"
    """Category of a product whose category the shop does not know (it is also archived)."""
    invoices: bool = False


# Imported orders without an invoice get the invoice job, deferred with
# Procrastinate's own defer function (as `shop.jobs` does for one job), one
# statement for all of them. The job numbers the invoice when it runs.
_QUEUE_INVOICES = sql.SQL("""
WITH picked AS (
    UPDATE orders o SET invoice_requested_at = now()
    WHERE o.imported_at IS NOT NULL AND o.invoice_requested_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.order_id = o.id)
    RETURNING o.id
)
SELECT count(*) FROM unnest({DEFER_JOBS_FUNCTION}(ARRAY(
    SELECT ROW(%(queue)s, %(task)s, %(priority)s, NULL, NULL,
               jsonb_build_object('order_id', id), NULL)::{JOB_TO_DEFER_TYPE}
    FROM picked ORDER BY id
)))
""").format(
    DEFER_JOBS_FUNCTION=sql.Identifier(DEFER_JOBS_FUNCTION),
    JOB_TO_DEFER_TYPE=sql.Identifier(JOB_TO_DEFER_TYPE),
)


async def queue_invoices(conn: psycopg.AsyncConnection[Any]) -> int:
    """Defer an invoice job for every imported order that has no invoice and none requested."""
    job = task_job("orders:generate_invoice")
    row = await (
        await conn.execute(
            _QUEUE_INVOICES,
            {"queue": job.queue, "task": job.task_name, "priority": job.priority},
        )
    ).fetchone()
    return int(row[0]) if row else 0


async def import_django(
    settings: Settings, source_url: str, options: ImportOptions, out: TextIO
) -> Report:
    """Run one pass; progress goes to ``out``; the caller prints the report."""
    started = time.monotonic()
    report = Report(dry_run=options.dry_run)
    progress = Progress(out)
    source = await staging.open_source(source_url)
    try:
        target = await psycopg.AsyncConnection.connect(
            settings.database.libpq_url, application_name="shop-import-django"
        )
        try:
            # Room for the joins and aggregates over millions of staged rows (no spill to disk).
            await target.execute("SET LOCAL work_mem = '256MB'")
            changed_users, changed_stock = await _run(source, target, options, report, progress)
            if report.blocked or options.dry_run:
                await target.rollback()
            else:
                progress.step("committing")
                await target.commit()
                progress.done()
                for query in apply.SEQUENCES:
                    await target.execute(query)
                await target.commit()
        finally:
            await target.close()
    finally:
        await source.close()
    if not report.blocked and not options.dry_run:
        progress.step("invalidating caches")
        await _invalidate_caches(settings, changed_users, changed_stock, out)
        progress.done()
    report.seconds = time.monotonic() - started
    return report


async def _run(
    source: psycopg.AsyncConnection[Any],
    target: psycopg.AsyncConnection[Any],
    options: ImportOptions,
    report: Report,
    progress: Progress,
) -> tuple[list[int], list[int]]:
    """``(users, products)`` whose cached snapshot or stock figure the run makes stale."""
    for table in staging.STAGED:
        total = await staging.count_source(source, table)
        report.tables[table.name].source = total
        progress.start(f"reading {table.name}", total)
        await staging.copy_table(source, target, table, progress)
        progress.finish()

    twins = await rules.find_email_twins(target)
    if twins:
        if options.email_twins == "stop":
            report.problems += twins
            report.blocked = (
                f"{len(twins)} users share an e-mail address up to case; "
                "resolve them in the Django app or run with --email-twins keep-latest"
            )
            return [], []
        report.problems += await rules.keep_latest_twin(target)

    progress.step("checking the rules for odd data")
    report.problems += await rules.apply_rules(target, fallback_category=options.fallback_category)
    progress.done(f"{len(report.problems)} problems")
    for problem in report.problems:
        if problem.refused:
            report.tables[problem.table].refused += 1

    changed_users = await apply.changed_user_ids(target)
    changed_stock = await apply.changed_stock_ids(target)
    params: dict[str, Any] = {
        "categories": list(rules.CATEGORIES),
        "fallback": options.fallback_category,
        "placeholder": rules.PLACEHOLDER_PRICE,
    }
    for name, query in apply.UPSERTS:
        counts = report.tables[name]
        progress.start(f"writing {name}", counts.source)
        batches = await apply.id_batches(target, name, _BATCHES)
        span = batches[-1][1] - batches[0][0] if batches else 1
        for low, high in batches:
            inserted, updated = await apply.count_upsert(
                target, query, {**params, "low": low, "high": high}
            )
            counts.inserted += inserted
            counts.updated += updated
            progress.advance(counts.source * (high - low) // span)  # ids are dense enough
        if counts.inserted or counts.updated:
            await target.execute(apply.ANALYZE_AFTER[name])
        progress.finish(f"({counts.inserted} new, {counts.updated} updated)")

    progress.step("order history, removed items, deleted products")
    removed = await apply.run_statement(target, apply.REMOVE_WIPED_ITEMS)
    history = await apply.run_statement(target, apply.UPDATE_HISTORY)
    history += await apply.run_statement(target, apply.INSERT_HISTORY)
    archived = await apply.run_statement(target, apply.ARCHIVE_VANISHED)
    progress.done()
    report.notes.append(f"order history entries written or brought up to date: {history}")
    if removed:
        report.notes.append(f"items of imported orders removed (gone from the source): {removed}")
    if archived:
        report.notes.append(f"imported products archived (deleted in the source): {archived}")
    if options.invoices:
        queued = await queue_invoices(target)
        report.notes.append(f"invoice jobs queued for imported orders: {queued}")
    return changed_users, changed_stock


async def _invalidate_caches(
    settings: Settings, user_ids: list[int], product_ids: list[int], out: TextIO
) -> None:
    from shop.accounts.security import forget_user
    from shop.cache import ORDERS, PRODUCT_DETAIL, PRODUCTS, create_cache
    from shop.catalog import stock
    from shop.db import create_engine
    from shop.identity import read_cache_key_prefix

    engine = create_engine(settings.database)  # the cache's keys name the database
    cache = create_cache(settings.cache, key_prefix=lambda: read_cache_key_prefix(engine))
    try:
        await cache.bump(PRODUCTS)
        await cache.bump(PRODUCT_DETAIL)
        await cache.bump(ORDERS)
        for start in range(0, len(product_ids), 500):
            batch = product_ids[start : start + 500]
            await stock.refresh(cache, engine, batch, settings.cache.products_ttl)
        for start in range(0, len(user_ids), 100):
            await asyncio.gather(*(forget_user(cache, i) for i in user_ids[start : start + 100]))
        if not cache.healthy:
            # The bumps and deletes could not all be delivered; what is cached expires by TTL.
            out.write(
                "warning: the cache did not answer; cached pages expire within 300 s and "
                f"user snapshots within {settings.cache.user_ttl} s\n"
            )
    finally:
        await cache.close()
        await engine.dispose()
