"""J1, the job drain, and the size of every table.

J1: 5,000 orders with their invoice jobs are queued while no worker runs (in a database of
their own on the bench's PostgreSQL, so the bench's running worker never sees them), then
one ``shop worker`` at its default concurrency (and its default ``JOB_CPU_PROCESSES``, the
processes it renders PDFs in) drains them. Reported: jobs/s (wall clock, from the worker's
registration to the last job finished) and CPU ms per job (user + system time of the worker
and its CPU processes over the jobs). Target: >= 300 jobs/s.

Then retention: the finished jobs are aged past ``JOB_RETENTION_DAYS`` and
``jobs:remove_finished_jobs`` runs on the same worker; the job tables' rows go back to
what they were before the run (their disk size waits for autovacuum to reuse it).

`print_table_sizes` prints every table's rows and size (``pg_total_relation_size``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

JOBS = 5000
QUICK_JOBS = 500
TARGET_JOBS_PER_S = 300.0
TIMEOUT_S = 600.0

_SEED_USER = """
INSERT INTO users (email, username, password_hash)
VALUES ('j1@example.com', 'Ирина Петрова', 'unusable')
"""
_SEED_PRODUCTS = """
INSERT INTO products (name, description, category, price, stock)
VALUES ('Desk lamp', '', 'home', 24.50, 1000000),
       ('Чайник электрический', '', 'home', 31.90, 1000000),
       ('Notebook A5', '', 'books', 3.99, 1000000)
"""
_SEED = """
WITH o AS (
    INSERT INTO orders (user_id, status, total_price)
    SELECT (SELECT id FROM users WHERE email = 'j1@example.com'), 'pending', 120.79
    FROM generate_series(1, %(jobs)s)
    RETURNING id
), i AS (
    INSERT INTO order_items (order_id, product_id, product_name, product_description,
                             product_category, price_at_purchase, quantity)
    SELECT o.id, p.id, p.name, p.description, p.category, p.price, 2 FROM o, products p
)
SELECT procrastinate_defer_jobs_v1(array_agg(ROW(
    'invoices', 'orders:generate_invoice', 0, NULL, NULL,
    jsonb_build_object('order_id', o.id), NULL
)::procrastinate_job_to_defer_v1)) FROM o
"""


def _own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system time of the worker and of every process under it (its CPU pool)."""
    total = _own_cpu_seconds(pid)
    for child in _children(pid):
        try:
            total += _cpu_seconds(child)
        except FileNotFoundError:  # ended meanwhile
            continue
    return total


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def table_sizes(url: str) -> list[tuple[str, int, int]]:
    """(table, rows, bytes with indexes and TOAST) of every table, largest first."""
    with psycopg.connect(url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        sizes = []
        for name in names:
            ident = psycopg.sql.Identifier(name)
            rows = conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(ident))
            count = rows.fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (name,)).fetchone()
            sizes.append((name, int(count[0]) if count else 0, int(size[0]) if size else 0))
    return sorted(sizes, key=lambda item: -item[2])


def print_table_sizes(url: str, title: str) -> list[tuple[str, int, int]]:
    sizes = table_sizes(url)
    print(f"\n  table sizes, {title}:")
    for name, rows, size in sizes:
        print(f"    {name:32} {rows:>10} rows {size / 1024:>12.0f} KiB")
    return sizes


def run_j1(
    server_url: str, env: dict[str, str], workdir: Path, *, quick: bool = False
) -> dict[str, Any]:
    """``server_url``: any database of the bench's PostgreSQL (J1 makes its own next to it)."""
    jobs = QUICK_JOBS if quick else JOBS
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_j1")
        conn.execute("CREATE DATABASE bench_j1")
    url = server_url.rsplit("/", 1)[0] + "/bench_j1"
    env = {**env, "DATABASE_URL": url, "JSON_LOGS": "true"}
    shop = [sys.executable, "-m", "shop.cli"]
    subprocess.run([*shop, "database", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    before = {name: rows for name, rows, _ in table_sizes(url)}
    with psycopg.connect(url) as conn:
        conn.execute(_SEED_USER)
        conn.execute(_SEED_PRODUCTS)
        conn.execute(_SEED, {"jobs": jobs})
    print(f"  J1: {jobs} invoice jobs queued; starting one `shop worker` (default concurrency)")
    log = (workdir / "j1-worker.log").open("wb")
    worker = subprocess.Popen([*shop, "worker"], env=env, stdout=log, stderr=log)  # noqa: S603
    # The clock and the CPU count start once the worker is connected (imports, not jobs, before).
    ready = time.monotonic() + 120
    while not _count(url, "SELECT count(*) FROM procrastinate_workers"):
        if time.monotonic() > ready or worker.poll() is not None:
            raise SystemExit(f"J1: the worker did not start (log: {log.name})")
        time.sleep(0.05)
    started = time.monotonic()
    cpu_before = _cpu_seconds(worker.pid)
    finished = "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'invoices' AND status IN ('succeeded', 'failed')"
    try:
        while _count(url, finished) < jobs:
            if time.monotonic() - started > TIMEOUT_S or worker.poll() is not None:
                raise SystemExit(f"J1: the worker did not drain the queue (log: {log.name})")
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu = _cpu_seconds(worker.pid) - cpu_before
        failed = _count(url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'")
        pdf_bytes = _count(url, "SELECT coalesce(avg(length(pdf)), 0)::bigint FROM invoices")
        result: dict[str, Any] = {
            "jobs": jobs,
            "seconds": round(wall, 2),
            "jobs_per_s": round(jobs / wall, 1),
            "cpu_ms_per_job": round(cpu * 1000 / jobs, 2),
            "failed": failed,
            "avg_pdf_bytes": pdf_bytes,
        }
        verdict = "ok" if result["jobs_per_s"] >= TARGET_JOBS_PER_S else "MISS"
        print(
            f"  J1: {result['jobs_per_s']} jobs/s ({wall:.1f} s), "
            f"{result['cpu_ms_per_job']} ms CPU per job, {failed} failed, "
            f"invoices {pdf_bytes} bytes on average; target >= {TARGET_JOBS_PER_S:g} jobs/s: "
            f"{verdict}"
        )
        print_table_sizes(url, "after J1")
        # Retention: the run's jobs finished "eight days ago", then the periodic task runs.
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE procrastinate_events SET at = at - interval '8 days'")
            conn.execute(
                "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('housekeeping', "
                "'jobs:remove_finished_jobs', 0, NULL, NULL, '{\"timestamp\": 0}'::jsonb, NULL)"
                "::procrastinate_job_to_defer_v1])"
            )
        deadline = time.monotonic() + 120
        left = "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'invoices'"
        while _count(url, left) and time.monotonic() < deadline:
            time.sleep(0.5)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM procrastinate_jobs, procrastinate_events")
        after = print_table_sizes(url, "after the retention task (invoices are kept)")
        result["job_rows_before_after_retention"] = {
            name: (before.get(name, 0), rows)
            for name, rows, _ in after
            if name.startswith("procrastinate_")
        }
        return result
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
