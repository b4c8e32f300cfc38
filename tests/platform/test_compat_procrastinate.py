"""Procrastinate's internals the shop relies on (src/shop/_compat/procrastinate.py) are still
there. A failure here means the library changed: read its changelog, adapt the compat
module, then move the version bound in pyproject.toml."""

from __future__ import annotations

import re
from importlib import metadata, resources

import procrastinate
import psycopg_pool
from packaging.version import Version
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from shop._compat import procrastinate as compat
from shop.jobs import ShopConnector


def _schema_sql() -> str:
    return resources.files("procrastinate").joinpath("sql/schema.sql").read_text()


def test_the_defer_query_is_the_one_shop_connector_recognises() -> None:
    # ShopConnector compares the query it is asked to run with this text.
    assert "defer_jobs" in procrastinate.sql.queries
    assert compat.DEFER_JOBS_QUERY is procrastinate.sql.queries["defer_jobs"]
    assert compat.DEFER_JOBS_FUNCTION in compat.DEFER_JOBS_QUERY


def test_the_defer_function_and_its_row_type_match_the_library_schema() -> None:
    schema = _schema_sql()
    function = re.search(
        rf"CREATE FUNCTION {compat.DEFER_JOBS_FUNCTION}\(\s*jobs {compat.JOB_TO_DEFER_TYPE}\[\]\s*\)"
        r"\s*RETURNS bigint\[\]",
        schema,
    )
    assert function, f"{compat.DEFER_JOBS_FUNCTION}'s signature changed in procrastinate"
    row_type = re.search(rf"CREATE TYPE {compat.JOB_TO_DEFER_TYPE} AS \((.*?)\);", schema, re.S)
    assert row_type
    fields = tuple(line.split()[0] for line in row_type.group(1).strip().splitlines())
    assert fields == compat.JOB_TO_DEFER_FIELDS


async def test_the_defer_function_and_its_row_type_match_the_migrated_database(
    session_maker: async_sessionmaker,
) -> None:
    async with session_maker() as session:
        signature = (
            await session.execute(
                text(
                    "SELECT pg_get_function_identity_arguments(p.oid) AS arguments, "
                    "pg_get_function_result(p.oid) AS result "
                    "FROM pg_proc p WHERE p.proname = :name"
                ),
                {"name": compat.DEFER_JOBS_FUNCTION},
            )
        ).all()
        fields = (
            await session.execute(
                text(
                    "SELECT a.attname FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid "
                    "WHERE t.typname = :name AND a.attnum > 0 ORDER BY a.attnum"
                ),
                {"name": compat.JOB_TO_DEFER_TYPE},
            )
        ).scalars()
        assert [tuple(row) for row in signature] == [
            (f"jobs {compat.JOB_TO_DEFER_TYPE}[]", "bigint[]")
        ]
        assert tuple(fields) == compat.JOB_TO_DEFER_FIELDS


async def test_a_closed_external_pool_is_forgotten_so_the_next_worker_can_open_another(
    postgres_url: str,
) -> None:
    connector = ShopConnector()
    job_app = procrastinate.App(connector=connector)
    for _ in range(2):
        pool = psycopg_pool.AsyncConnectionPool(postgres_url, min_size=1, open=False)
        await pool.open(wait=True)
        async with job_app.open_async(pool=pool):
            assert connector._async_pool is pool  # the attribute compat resets
            assert (await connector.execute_query_one_async("SELECT 1 AS one"))["one"] == 1
        await pool.close()
        compat.forget_external_pool(connector)
        assert connector._async_pool is None


def test_procrastinate_is_within_the_version_range_the_compat_module_was_checked_with() -> None:
    assert Version("3.2") <= Version(metadata.version("procrastinate")) < Version("3.11")


def test_the_retry_function_matches_the_library_schema_and_the_query_its_manager_runs() -> None:
    function = re.search(
        rf"CREATE FUNCTION {compat.RETRY_JOB_FUNCTION}\((.*?)\)\s*RETURNS void", _schema_sql(), re.S
    )
    assert function, f"{compat.RETRY_JOB_FUNCTION} is gone or changed in procrastinate"
    names = tuple(line.split()[0] for line in function.group(1).strip().splitlines())
    assert names == compat.RETRY_JOB_ARGUMENTS
    assert compat.RETRY_JOB_FUNCTION in procrastinate.sql.queries["retry_job"]


async def test_the_retry_function_is_in_the_migrated_database(
    session_maker: async_sessionmaker,
) -> None:
    async with session_maker() as session:
        arguments = (
            await session.execute(
                text(
                    "SELECT pg_get_function_identity_arguments(p.oid) FROM pg_proc p "
                    "WHERE p.proname = :name"
                ),
                {"name": compat.RETRY_JOB_FUNCTION},
            )
        ).scalars()
        assert [
            tuple(argument.split()[0] for argument in signature.split(", "))
            for signature in arguments
        ] == [compat.RETRY_JOB_ARGUMENTS]
