"""`shop import django` as an operator runs it: a real subprocess, its output and exit status."""

from __future__ import annotations

import os

import asyncpg
import pytest

from tests.importer.conftest import source_execute
from tests.platform.test_cli import shop


@pytest.fixture
def cli_env(postgres_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"DATABASE_URL": postgres_url, "SECRET_KEY": "cli-test-secret-key-that-is-long-enough"}
    )
    env.pop("MEMCACHED_URL", None)
    return env


async def _count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return count
    finally:
        await conn.close()


async def test_cli_shows_progress_and_a_summary_and_exits_1_when_rows_were_refused(
    cli_env, postgres_url, django_source
):
    result = shop("import", "django", django_source, env=cli_env)

    assert result.returncode == 1, result.stderr  # order 4's status is unknown: refused
    lines = result.stdout.splitlines()
    # Not a terminal: plain lines, one per table when it is done, no carriage returns.
    assert any(line.startswith("reading users: 9/9 in ") for line in lines)
    assert any(line.startswith("writing order items: 5/5 (4 new, 0 updated) in") for line in lines)
    assert "\r" not in result.stdout
    assert "refused: orders: unknown status (1)" in lines
    assert any(line.startswith("  orders") and "4 were imported" in line for line in lines)
    assert await _count(postgres_url, "orders") == 4


async def test_cli_exits_0_when_nothing_was_refused(cli_env, postgres_url, django_source):
    await source_execute(django_source, "DELETE FROM orders_orderitem WHERE order_id = 4")
    await source_execute(django_source, "DELETE FROM orders_order WHERE id = 4")

    result = shop("import", "django", django_source, "--dry-run", env=cli_env)
    applied = shop("import", "django", django_source, env=cli_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run, nothing written" in result.stdout
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert await _count(postgres_url, "users") == 9


async def test_cli_refuses_an_unreachable_source_and_changes_nothing(cli_env, postgres_url):
    result = shop("import", "django", "postgresql://nobody@127.0.0.1:1/none", env=cli_env)

    assert result.returncode == 2
    assert "import failed, the shop's database is unchanged" in result.stderr
    assert await _count(postgres_url, "users") == 0
