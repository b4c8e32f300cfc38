"""One typed Settings object, built from the environment in exactly one place.

`Settings.from_env()` reads ``os.environ`` (or a mapping a test passes) once and
validates every value. A wrong or missing value raises `ConfigError` whose
message names the variable; the CLI prints that one line and exits, so an
operator never has to read a traceback to learn which variable is wrong.

Settings are grouped by concern (database, cache, tokens, jobs, http) and are
immutable; code receives them as an argument, never by importing a global.

The file is about 400 lines and mostly data: the groups' fields with their
defaults and docstrings, the small value parsers, and `Settings.from_env`, a
table of variable → field. It stays one module so that every variable the
shop reads is read here and nowhere else.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

__all__ = [
    "MIN_SECRET_BYTES",
    "CacheSettings",
    "ConfigError",
    "ConsoleSettings",
    "DatabaseSettings",
    "PasswordSettings",
    "Settings",
]

MIN_SECRET_BYTES = 32
"""SECRET_KEY signs HS256 JWTs: at least the 32 bytes of its hash (RFC 7518 §3.2)."""


class ConfigError(Exception):
    """The configuration is invalid."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {raw!r}")
    return value


def _list(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = env.get(name, default)
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _delays(env: Mapping[str, str], name: str, default: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in _list(env, name, default))
    except ValueError:
        raise ConfigError(f"{name}: expected comma-separated seconds like 10,60,300") from None
    if any(delay < 0 for delay in delays):
        raise ConfigError(f"{name}: delays cannot be negative")
    return delays


def _currency(env: Mapping[str, str]) -> str:
    raw = env.get("CURRENCY", "").strip() or "EUR"
    if len(raw) != 3 or not raw.isalpha() or not raw.isupper():
        raise ConfigError(f"CURRENCY: expected an ISO 4217 code like EUR or USD, got {raw!r}")
    return raw


def _database_url(raw: str) -> str:
    """Accept the usual ``postgresql://`` spelling and use the asyncpg driver."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if raw.startswith(prefix):
            return "postgresql+asyncpg://" + raw[len(prefix) :]
    # Only the scheme is shown: the rest may hold a password.
    got = f"a {raw.split('://', 1)[0]}:// URL" if "://" in raw else "a value that is not a URL"
    raise ConfigError(
        f"DATABASE_URL: expected a PostgreSQL URL like postgresql://user:pass@db:5432/shop, got {got}"
    )


def _memcached_servers(raw: str) -> tuple[tuple[str, int], ...]:
    """``host:port`` or a comma-separated list of them; each may start with ``memcached://``."""
    servers: list[tuple[str, int]] = []
    for part in raw.split(","):
        entry = part.strip().removeprefix("memcached://").removeprefix("memcache://")
        if not entry:
            continue
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"MEMCACHED_URL: expected host:port or a comma-separated list of them, got {entry!r}"
            )
        if (host, int(port)) in servers:
            raise ConfigError(f"MEMCACHED_URL: {entry!r} is listed twice")
        servers.append((host, int(port)))
    return tuple(servers)


_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


def _key_prefix(raw: str) -> str | None:
    """``CACHE_KEY_PREFIX``: up to 10 characters (memcached keys are short), separator added."""
    raw = raw.strip()
    if not raw:
        return None
    if len(raw) > 9 or not set(raw) <= _PREFIX_CHARS:
        raise ConfigError(
            f"CACHE_KEY_PREFIX: expected at most 9 letters, digits or _.:- , got {raw!r}"
        )
    return raw + ":"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    """SQLAlchemy URL with the asyncpg driver."""
    pool_size: int = 20
    """Connections kept open per process: at least the requests one process serves at once."""
    max_overflow: int = 5
    """Extra connections for a burst; opened and closed again, so keep this small."""
    pool_timeout: float = 5.0
    """Seconds a request waits for a pooled connection before it gets a 503."""
    connect_timeout: float = 5.0
    statement_timeout_ms: int = 15_000
    prepared_statement_cache_size: int = 100
    """asyncpg's per-connection cache of prepared statements; 0 turns it off, which a
    PgBouncer in transaction pooling needs (a statement prepared on one server connection
    does not exist on the next one)."""

    @property
    def libpq_url(self) -> str:
        """The same database as a plain libpq URL (psycopg, pgbench, psql)."""
        return "postgresql://" + self.url.split("://", 1)[1]


@dataclass(frozen=True, slots=True)
class CacheSettings:
    servers: tuple[tuple[str, int], ...]
    """memcached ``(host, port)`` pairs, keys spread among them; empty selects the
    in-process backend (dev mode)."""
    timeout: float = 0.05
    """Seconds one cache call may take before it counts as a miss."""
    products_ttl: int = 300
    order_ttl: int = 60
    user_ttl: int = 60
    key_prefix: str | None = None
    """``CACHE_KEY_PREFIX``; None derives one from the database (`shop.identity`)."""


@dataclass(frozen=True, slots=True)
class TokenSettings:
    secret_key: str
    access_minutes: int = 60
    refresh_days: int = 7
    leeway_seconds: int = 5


@dataclass(frozen=True, slots=True)
class JobSettings:
    shipped_webhook_url: str | None = None
    webhook_secret: str = ""
    webhook_timeout: float = 10.0
    smtp_url: str | None = None
    shop_name: str = "shop"
    shop_address: str = ""
    """The seller's postal address, printed under the shop name on invoices."""
    currency: str = "EUR"
    """ISO 4217 code of every amount; printed on invoices."""
    retention_days: int = 7
    """Finished jobs (succeeded, failed, cancelled) and their events are deleted after this."""
    webhook_log_retention_days: int = 90
    """Webhook delivery attempts are deleted after this; the events themselves stay."""
    stalled_after_seconds: int = 30
    """A job whose worker died is retried by another worker within this (at least 20 s;
    see `shop.jobs.stale_heartbeat_seconds`)."""
    webhook_retry_delays: tuple[float, ...] = (10.0, 60.0, 300.0)
    """Seconds before each retry of a failed webhook delivery; one entry per retry."""
    mail_from: str = "shop@localhost"
    cpu_processes: int = 1
    """Processes a worker renders invoices in, beside its event loop (`shop.cpu`); 0: inline."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    metrics_token: str | None = None
    login_attempts: int = 5
    """Failed logins per email (from any address) before that email gets 429."""
    login_attempts_per_address: int = 100
    """Failed logins from one client address (any emails) before that address gets 429."""
    login_window_seconds: int = 300
    register_per_minute: int = 300
    json_logs: bool = True
    max_url_bytes: int = 8192
    """Path plus query string; longer → 414."""
    max_header_bytes: int = 16_384
    """All request headers together; larger → 431."""
    max_json_depth: int = 32
    """Deepest nesting of arrays/objects accepted in a JSON body; deeper → 400."""


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """The staff console at ``/admin/`` (`shop.console`)."""

    idle_minutes: int = 30
    """A console session unused for this long is over; the staff member signs in again."""
    secure_cookie: bool | None = None
    """``Secure`` on the session cookie: None = when the request came over HTTPS."""
    low_stock: int = 5
    """Products with at most this many units count as low on the dashboard."""


@dataclass(frozen=True, slots=True)
class PasswordSettings:
    """Argon2id cost. The defaults are OWASP's recommended configuration
    (19 MiB, 2 passes, 1 lane: about 35 ms of one core here); stored hashes
    made with other parameters are upgraded at the user's next login."""

    time_cost: int = 2
    memory_kib: int = 19_456
    parallelism: int = 1


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings
    cache: CacheSettings
    tokens: TokenSettings
    jobs: JobSettings
    http: HttpSettings = field(default_factory=HttpSettings)
    passwords: PasswordSettings = field(default_factory=PasswordSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    debug: bool = False
    dev_mode: bool = False
    min_order_amount: Decimal = Decimal("1.00")
    max_order_items: int = 100
    list_exact_count_max: int = 1_000
    """Lists count matching rows exactly up to this many; beyond, ``count`` is an estimate."""
    generated_secret: bool = False
    """True when dev mode made up SECRET_KEY; the CLI says so at start-up."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dev_mode: bool = False) -> Settings:
        env = os.environ if env is None else env
        debug = _bool(env, "DEBUG", False)

        secret = env.get("SECRET_KEY", "")
        generated = False
        if not secret:
            if not dev_mode:
                raise ConfigError(
                    "SECRET_KEY: required (set a long random string; `shop dev` makes one up)"
                )
            secret = secrets.token_urlsafe(48)
            generated = True
        elif len(secret.encode()) < MIN_SECRET_BYTES:
            # One rule for `shop run` and `shop dev`: HS256 wants a key as long as its
            # hash (RFC 7518 §3.2); PyJWT warns about anything shorter.
            raise ConfigError(
                f"SECRET_KEY: too short ({len(secret.encode())} bytes), "
                f"use at least {MIN_SECRET_BYTES} characters"
            )

        raw_db = env.get("DATABASE_URL", "")
        if not raw_db:
            if not dev_mode:
                raise ConfigError(
                    "DATABASE_URL: required, e.g. postgresql://user:pass@db:5432/shop"
                )
            raw_db = (
                "postgresql://placeholder/shop"  # dev mode replaces it with the embedded server
            )
        database = DatabaseSettings(
            url=_database_url(raw_db),
            pool_size=_int(env, "DB_POOL_SIZE", 20, minimum=1),
            max_overflow=_int(env, "DB_MAX_OVERFLOW", 5),
            pool_timeout=_float(env, "DB_POOL_TIMEOUT", 5.0),
            connect_timeout=_float(env, "DB_CONNECT_TIMEOUT", 5.0),
            statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 15_000, minimum=100),
            prepared_statement_cache_size=_int(env, "DB_PREPARED_STATEMENT_CACHE_SIZE", 100),
        )

        cache = CacheSettings(
            servers=_memcached_servers(env.get("MEMCACHED_URL", "")),
            timeout=_float(env, "CACHE_TIMEOUT", 0.05),
            key_prefix=_key_prefix(env.get("CACHE_KEY_PREFIX", "")),
        )

        tokens = TokenSettings(
            secret_key=secret,
            access_minutes=_int(env, "ACCESS_TOKEN_MINUTES", 60, minimum=1),
            refresh_days=_int(env, "REFRESH_TOKEN_DAYS", 7, minimum=1),
        )

        raw_min = env.get("MIN_ORDER_AMOUNT", "1.00")
        try:
            min_amount = Decimal(raw_min)
        except InvalidOperation:
            raise ConfigError(
                f"MIN_ORDER_AMOUNT: expected a decimal like 1.00, got {raw_min!r}"
            ) from None
        if not min_amount.is_finite() or min_amount < 0:
            raise ConfigError(f"MIN_ORDER_AMOUNT: must be a non-negative amount, got {raw_min!r}")

        webhook_url = env.get("SHIPPED_WEBHOOK_URL", "").strip() or None
        if webhook_url and not webhook_url.startswith(("http://", "https://")):
            raise ConfigError(f"SHIPPED_WEBHOOK_URL: expected an http(s) URL, got {webhook_url!r}")
        webhook_secret = (
            env.get("WEBHOOK_SECRET", "")
            or hashlib.sha256(b"shop-webhook:" + secret.encode()).hexdigest()
        )
        jobs = JobSettings(
            shipped_webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_timeout=_float(env, "WEBHOOK_TIMEOUT", 10.0),
            smtp_url=env.get("SMTP_URL", "").strip() or None,
            shop_name=env.get("SHOP_NAME", "shop"),
            shop_address=env.get("SHOP_ADDRESS", "").strip(),
            currency=_currency(env),
            retention_days=_int(env, "JOB_RETENTION_DAYS", 7, minimum=1),
            webhook_log_retention_days=_int(env, "WEBHOOK_LOG_RETENTION_DAYS", 90, minimum=1),
            stalled_after_seconds=_int(env, "JOB_STALLED_AFTER_SECONDS", 30, minimum=20),
            webhook_retry_delays=_delays(env, "WEBHOOK_RETRY_DELAYS", "10,60,300"),
            mail_from=env.get("MAIL_FROM", "").strip() or "shop@localhost",
            cpu_processes=_int(env, "JOB_CPU_PROCESSES", 1, minimum=0),
        )

        http = HttpSettings(
            allowed_hosts=_list(env, "ALLOWED_HOSTS", "localhost,127.0.0.1"),
            cors_origins=_list(env, "CORS_ORIGINS", ""),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1_048_576, minimum=1024),
            metrics_token=env.get("METRICS_TOKEN") or None,
            login_attempts=_int(env, "LOGIN_ATTEMPTS", 5, minimum=1),
            login_attempts_per_address=_int(env, "LOGIN_ATTEMPTS_PER_ADDRESS", 100, minimum=1),
            login_window_seconds=_int(env, "LOGIN_WINDOW_SECONDS", 300, minimum=1),
            register_per_minute=_int(env, "REGISTER_PER_MINUTE", 300, minimum=1),
            json_logs=_bool(env, "JSON_LOGS", not (debug or dev_mode)),
            max_url_bytes=_int(env, "HTTP_MAX_URL_BYTES", 8192, minimum=256),
            max_header_bytes=_int(env, "HTTP_MAX_HEADER_BYTES", 16_384, minimum=1024),
            max_json_depth=_int(env, "MAX_JSON_DEPTH", 32, minimum=4),
        )
        parallelism = _int(env, "PASSWORD_HASH_PARALLELISM", 1, minimum=1)
        passwords = PasswordSettings(
            time_cost=_int(env, "PASSWORD_HASH_TIME_COST", 2, minimum=1),
            # Argon2 needs 8 KiB per lane; below OWASP's 7 MiB floor is the operator's call.
            memory_kib=_int(env, "PASSWORD_HASH_MEMORY_KIB", 19_456, minimum=8 * parallelism),
            parallelism=parallelism,
        )
        raw_secure = env.get("CONSOLE_SECURE_COOKIE", "auto").strip().lower() or "auto"
        console = ConsoleSettings(
            idle_minutes=_int(env, "CONSOLE_IDLE_MINUTES", 30, minimum=1),
            secure_cookie=None
            if raw_secure == "auto"
            else _bool(env, "CONSOLE_SECURE_COOKIE", False),
            low_stock=_int(env, "LOW_STOCK_THRESHOLD", 5),
        )
        return cls(
            console=console,
            database=database,
            cache=cache,
            tokens=tokens,
            jobs=jobs,
            http=http,
            passwords=passwords,
            debug=debug,
            dev_mode=dev_mode,
            min_order_amount=min_amount,
            max_order_items=_int(env, "MAX_ORDER_ITEMS", 100, minimum=1),
            list_exact_count_max=_int(env, "LIST_EXACT_COUNT_MAX", 1_000, minimum=1),
            generated_secret=generated,
        )

    def with_database(self, url: str) -> Settings:
        return replace(self, database=replace(self.database, url=_database_url(url)))
