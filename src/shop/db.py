"""Engine, sessions and the one-transaction-per-request rule.

Every HTTP request that asks for ``db_session`` gets one `AsyncSession` whose
transaction the framework owns: `provide_session` commits after the handler
returned (before the response is sent) and rolls back when it raised. Services
never commit; they `flush()` when they need an id, and never choose how their
session runs either.

The read-only routes (lists, details) use `provide_read_session`: always
AUTOCOMMIT, no BEGIN/COMMIT round trips on a cache miss.

A route whose database work is, on some requests, a single statement that is
complete on its own (the checkout without an Idempotency-Key) asks for a
variant, `session_provider(autocommit_when=...)`: on the requests it names, the
session is bound to the engine in AUTOCOMMIT, so each statement is its own
transaction (no BEGIN/COMMIT round trips, row locks held only while the server
runs it), and the session's commit is a formality. The same provider owns both
kinds: the route says which requests, the provider decides how.

Work that must happen only once the data is durable (bumping a cache version,
so no client reads the old value after a 2xx) is registered with
`after_commit(session, callback)`. The callbacks run after the commit succeeded
and before the response leaves, so a client that sees 2xx can trust them.

advanced-alchemy's own autocommit handler commits in ``before_send`` and
swallows a failed commit, which would answer 2xx for a transaction that never
happened; that is why the session lifecycle lives here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from litestar import Request
    from litestar.datastructures import State

    from shop.settings import DatabaseSettings

__all__ = [
    "Base",
    "after_commit",
    "create_engine",
    "create_session_maker",
    "provide_read_session",
    "provide_session",
    "run_after_commit",
    "session_provider",
]

_AFTER_COMMIT = "shop.after_commit"

logger = logging.getLogger("shop.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every table of the shop (advanced-alchemy repositories use it)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _is_local(url: URL) -> bool:
    """True when every host of the URL is loopback or a unix socket directory."""
    hosts: list[str] = [url.host] if url.host else []
    query_host = url.query.get("host")
    hosts += [query_host] if isinstance(query_host, str) else list(query_host or ())
    if not hosts:
        return True  # libpq's default: the local unix socket
    return all(h in _LOCAL_HOSTS or h.startswith(("/", "127.")) for h in hosts)


def _unique_statement_name() -> str:
    return f"__shop_{uuid.uuid4().hex}__"


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """The async engine; the pool is sized by ``DB_POOL_SIZE`` / ``DB_MAX_OVERFLOW``.

    Keep the pool at least as large as the requests one process serves at
    once: overflow connections are opened and closed again per burst, and
    each new connection costs a TCP (and TLS) handshake and authentication.

    asyncpg's default ``sslmode=prefer`` asks for TLS on every new connection.
    To a loopback address or a unix socket that buys nothing and costs a
    round trip and an SSL context per connection, so it is off there unless
    the URL asks for it (``?ssl=...`` / ``?sslmode=...``).

    ``DB_PREPARED_STATEMENT_CACHE_SIZE=0`` is for a PgBouncer in transaction pooling
    (docs/deployment.md): both asyncpg's and SQLAlchemy's statement caches are off and
    each statement gets a unique name, so none is looked up on a server connection that
    never prepared it.
    """
    url = make_url(settings.url)
    connect_args: dict[str, Any] = {
        "timeout": settings.connect_timeout,
        "command_timeout": settings.statement_timeout_ms / 1000 + 5,
        "server_settings": {
            "statement_timeout": str(settings.statement_timeout_ms),
            "lock_timeout": str(settings.statement_timeout_ms),
            "application_name": "shop",
        },
    }
    if "ssl" not in url.query and "sslmode" not in url.query and _is_local(url):
        connect_args["ssl"] = False
    if settings.prepared_statement_cache_size == 0:
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
        url = url.update_query_dict({"prepared_statement_cache_size": "0"})
    else:
        connect_args["statement_cache_size"] = settings.prepared_statement_cache_size
    engine = create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=False,  # see _ping_idle_connections
        pool_recycle=1800,
        connect_args=connect_args,
    )
    _ping_idle_connections(engine)
    return engine


PING_IDLE_AFTER = 1.0
"""Seconds a pooled connection may sit unused before it is pinged on checkout."""

_CHECKED_IN_AT = "shop.checked_in_at"


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Check a pooled connection on checkout, so the first request after a PostgreSQL
    restart gets a live connection instead of a 503.

    Two checks, the cheap one first. asyncpg notices when the server closed the
    socket (a restart, a terminated backend) and says so without a round trip
    (``is_closed()``). A connection idle for ``PING_IDLE_AFTER`` is also pinged,
    for a server that vanished without closing anything. SQLAlchemy's
    ``pool_pre_ping`` would ping on every checkout, a measurable cost on hot
    cached reads that reuse each connection within milliseconds. A dead
    connection invalidates every pooled connection older than now (they all
    died with the server) and the pool hands out a new one.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            logger.info("a pooled database connection was closed by the server; reconnecting")
            raise InvalidatePoolError("connection closed by the server")
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_IDLE_AFTER:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            logger.info("a pooled database connection was dead; reconnecting (%s)", exc)
            raise InvalidatePoolError(str(exc)) from exc


def create_session_maker(
    engine: AsyncEngine, *, autocommit: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; with ``autocommit``, on a view of it whose connections run in
    AUTOCOMMIT (set on checkout from the shared pool, reset on return, no round trip)."""
    bind = engine.execution_options(isolation_level="AUTOCOMMIT") if autocommit else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[Any]]) -> None:
    """Run ``callback`` once this session's transaction has committed."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    callbacks = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        await callback()


def session_provider(
    *, autocommit_when: Callable[[Request[Any, Any, Any]], bool] | None = None
) -> Callable[..., AsyncGenerator[AsyncSession, None]]:
    """A ``db_session`` dependency; ``autocommit_when``: the requests whose session runs in
    AUTOCOMMIT (each statement its own transaction, see the module's docstring)."""

    async def provide_session(
        state: State, request: Request[Any, Any, Any]
    ) -> AsyncGenerator[AsyncSession, None]:
        """Litestar dependency: one session and one transaction per request.

        A request cancelled mid-query (the server shutting down, a sibling task of
        Litestar's dependency cleanup failing) leaves asyncpg waiting for that
        query's reply: the next command on the connection fails with "another
        operation is in progress", and under anyio's cancel scopes an awaited
        rollback is itself cancelled. So a cancelled request, or one whose commit
        or rollback failed, does not talk to the connection again: `_discard`
        closes it without a round trip (PostgreSQL rolls the transaction back when
        the socket closes) and the pool never hands it out again.
        """
        session_maker: async_sessionmaker[AsyncSession] = (
            state.statement_session_maker
            if autocommit_when is not None and autocommit_when(request)
            else state.session_maker
        )
        async with session_maker() as session:
            try:
                yield session
            except Exception:
                session.info.pop(_AFTER_COMMIT, None)
                try:
                    await session.rollback()
                except BaseException as exc:
                    _discard(session, exc)
                    if not isinstance(exc, Exception):
                        raise
                    # else: the handler's error is the one to report
                raise
            except BaseException as exc:
                session.info.pop(_AFTER_COMMIT, None)
                _discard(session, exc)
                raise
            else:
                # A request that never touched the database (a cache hit) has no
                # transaction: committing would only cost a greenlet round of
                # SQLAlchemy bookkeeping (about 4 % of a cached read).
                if session.in_transaction():
                    try:
                        await session.commit()
                    except BaseException as exc:
                        _discard(session, exc)
                        raise
                await run_after_commit(session)

    return provide_session


provide_session = session_provider()
"""The app-wide ``db_session``: one transaction per request."""


def _always(request: Request[Any, Any, Any]) -> bool:
    return True


provide_read_session = session_provider(autocommit_when=_always)
"""``db_session`` of the read-only routes (lists and details): AUTOCOMMIT, so a cache
miss pays no BEGIN and COMMIT round trips (two of a list miss's five). Under
PostgreSQL's READ COMMITTED each statement of a transaction takes its own snapshot
anyway, so reads see exactly what they saw inside one; a route that writes must not
use it."""


def _discard(session: AsyncSession, reason: BaseException) -> None:
    """Invalidate the session's connections synchronously: no await, so nothing can interrupt it."""
    logger.info("discarding the connection of a failed transaction (%s)", type(reason).__name__)
    session.sync_session.invalidate()
