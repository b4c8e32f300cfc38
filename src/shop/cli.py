"""The `shop` command: what an operator does, one small group each.

    shop run [--host --port --workers]     serve the API (uvicorn)
    shop worker [--concurrency]            run a Procrastinate worker
    shop database upgrade                  apply migrations (idempotent)
    shop users create --email --username --password [--staff]
    shop cache flush                       empty memcached (after a database restore)
    shop import django SOURCE_URL [--dry-run --invoices ...]
    shop dev [--staff EMAIL]               everything in one process, embedded PostgreSQL

Settings come from the environment (`Settings.from_env`); a bad value stops
the command with one line naming the variable.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import NoReturn

import click

from shop.settings import ConfigError, Settings


def _fail(message: str) -> NoReturn:
    click.echo(f"shop: {message}", err=True)
    sys.exit(2)


def load_settings(dev_mode: bool = False) -> Settings:
    try:
        return Settings.from_env(dev_mode=dev_mode)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Manage the shop: serve the API, run workers, migrate, create users.

    Configuration comes from the environment (SECRET_KEY, DATABASE_URL,
    MEMCACHED_URL, ...): `.env.example` lists and explains every variable.
    `shop dev` needs none of them.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SHOP_HOST")
@click.option("--port", default=8000, show_default=True, type=int, envvar="SHOP_PORT")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), envvar="WEB_CONCURRENCY"
)
def run(host: str, port: int, workers: int) -> None:
    """Serve the API with uvicorn (uvloop + httptools)."""
    import uvicorn

    from shop.ops.logging import configure_logging

    settings = load_settings()
    configure_logging(json_logs=settings.http.json_logs, debug=settings.debug)
    if workers > 1:
        _prepare_multiprocess_metrics()
    # On SIGTERM uvicorn stops accepting connections, lets in-flight requests
    # finish (up to timeout_graceful_shutdown) and then runs the lifespan shutdown.
    uvicorn.run(
        "shop.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        server_header=False,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
        log_config=None,
        access_log=False,
    )


def _prepare_multiprocess_metrics() -> None:
    """Several uvicorn processes: each writes its Prometheus counters to one shared directory.

    Any process then answers /metrics with the sum over all of them. The
    directory must be empty at start (old files would be added in), so each
    `shop run` makes its own unless PROMETHEUS_MULTIPROC_DIR names one.
    """
    import tempfile

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="shop-metrics-")


@main.command()
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 100))
def worker(concurrency: int) -> None:
    """Run a Procrastinate worker; SIGTERM lets it finish its current jobs first."""
    from shop.jobs import run_worker
    from shop.ops.logging import configure_logging
    from shop.tasks import bind_tasks, warm_up_cpu_process, warm_up_worker

    settings = load_settings()
    bind_tasks()
    configure_logging(json_logs=settings.http.json_logs, debug=settings.debug)
    running = run_worker(
        settings,
        concurrency=concurrency,
        warm_up=warm_up_worker,
        cpu_initializer=warm_up_cpu_process,
    )
    try:
        # The API's event loop (uvicorn's loop="uvloop") for the worker too: a job is a
        # dozen socket round trips to PostgreSQL, which uvloop handles in C.
        import uvloop
    except ImportError:  # uvicorn[standard] installs it wherever it builds
        asyncio.run(running)
    else:
        uvloop.run(running)


@main.group()
def database() -> None:
    """Schema migrations."""


@database.command()
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (safe to run again, and from two places at once)."""
    from shop.migrations import upgrade as do_upgrade

    settings = load_settings()
    do_upgrade(settings.database.url, revision)
    click.echo("database is up to date")


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.option("--email")
@click.option("--username")
@click.option(
    "--password", envvar="SHOP_USER_PASSWORD", help="or SHOP_USER_PASSWORD; prompted when omitted"
)
@click.option("--staff/--no-staff", default=False, show_default=True)
def users_create(
    email: str | None, username: str | None, password: str | None, staff: bool
) -> None:
    """Create a user (a staff user with --staff), like Django's createsuperuser."""
    interactive = sys.stdin.isatty()
    if email is None:
        if not interactive:
            _fail("--email is required")
        email = click.prompt("Email")
    if username is None:
        if not interactive:
            _fail("--username is required")
        username = click.prompt("Username")
    if password is None:
        if not interactive:
            _fail("--password is required")
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings()

    from shop.accounts.users import create_user_from_cli
    from shop.errors import ShopError

    try:
        user_id = asyncio.run(
            create_user_from_cli(
                settings, email=email, username=username, password=password, staff=staff
            )
        )
    except ShopError as exc:
        _fail(
            exc.detail
            + "".join(f"\n  {e.get('field')}: {e.get('message')}" for e in exc.errors or [])
        )
    click.echo(f"created {'staff ' if staff else ''}user {username} <{email}> with id {user_id}")


@main.group()
def cache() -> None:
    """The memcached cache."""


@cache.command("flush")
def cache_flush() -> None:
    """Empty every memcached server in MEMCACHED_URL: run it after restoring the database.

    A database restored in place keeps its name and identity, hence its cache
    key prefix, so entries cached before the restore would be served again.
    This drops them, and those of any other shop on the same servers (they
    only miss). Running API processes and workers need no restart.
    """
    from shop.cache import MemcachedCache

    settings = load_settings()
    if not settings.cache.servers:
        _fail("MEMCACHED_URL is unset: each process has its own in-process cache; restart them")

    async def flush() -> list[str]:
        # Not the configured timeout (tuned for requests, 50 ms): an operator can wait.
        mc = MemcachedCache.of(settings.cache.servers, 5.0, key_prefix="")
        try:
            await mc.flush()
            return mc.servers_down
        finally:
            await mc.close()

    down = asyncio.run(flush())
    if down:
        _fail(f"not flushed, memcached did not answer: {', '.join(down)}; run it again")
    click.echo(f"cache flushed on {len(settings.cache.servers)} server(s)")


@main.group("import")
def import_() -> None:
    """Bring data over from another system."""


@import_.command("django")
@click.argument("source_url")
@click.option("--dry-run", is_flag=True, help="read and check everything, write nothing")
@click.option(
    "--email-twins",
    type=click.Choice(["stop", "keep-latest"]),
    default="stop",
    show_default=True,
    help="users whose e-mails differ only by case: stop, or keep the most recently active one",
)
@click.option(
    "--unknown-category",
    default="home",
    show_default=True,
    type=click.Choice(["electronics", "clothing", "books", "home", "sports", "toys"]),
    help="category of (archived) products whose category the shop does not know",
)
@click.option("--invoices", is_flag=True, help="queue invoice jobs for imported orders")
@click.option("--all-problems", is_flag=True, help="list every problem, not 20 per rule")
def import_django(
    source_url: str,
    dry_run: bool,
    email_twins: str,
    unknown_category: str,
    invoices: bool,
    all_problems: bool,
) -> None:
    """Import users, products and orders from the Django app's PostgreSQL database.

    Idempotent (upsert by id), one transaction, never writes to SOURCE_URL.
    Exit status 1 when anything was refused or the import stopped.
    See docs/migrating-from-django.md.
    """
    from shop.importer.django import ImportOptions
    from shop.importer.django import import_django as run_import
    from shop.tasks import bind_tasks

    settings = load_settings()
    bind_tasks()  # --invoices defers the orders' invoice task by name
    options = ImportOptions(
        dry_run=dry_run,
        email_twins="keep-latest" if email_twins == "keep-latest" else "stop",
        fallback_category=unknown_category,
        invoices=invoices,
    )
    import psycopg

    try:
        report = asyncio.run(run_import(settings, source_url, options, sys.stdout))
    except psycopg.Error as exc:
        _fail(f"import failed, the shop's database is unchanged: {exc}".strip())
    report.print(sys.stdout, problems_per_rule=None if all_problems else 20)
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data-dir",
    default=lambda: os.environ.get("SHOP_DEV_DIR", ".shop-dev"),
    show_default=".shop-dev",
    help="where the embedded PostgreSQL keeps its data",
)
@click.option(
    "--staff",
    "staff_email",
    metavar="EMAIL",
    help="create this staff user once (its password is printed then)",
)
def dev(host: str, port: int, data_dir: str, staff_email: str | None) -> None:
    """Run the whole shop in one process: embedded PostgreSQL, API and worker.

    SIGINT, SIGTERM and SIGHUP stop the API, the worker and the embedded PostgreSQL.
    """
    from shop.dev import run_dev

    settings = load_settings(dev_mode=True)
    run_dev(settings, host=host, port=port, data_dir=data_dir, staff_email=staff_email)


if __name__ == "__main__":  # pragma: no cover
    main()
