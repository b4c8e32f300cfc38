"""A Django app's database to import from: the reference schema, real Django hashes, odd rows.

`django_source` is a libpq URL of a database (one per test session) whose
``public`` schema is rebuilt for every test that asks for it, with `SOURCE`:

* users with passwords hashed by Django itself (`make_password`), one per
  hasher the shop verifies, an unusable one, a bcrypt one, a superuser that is
  not staff, an inactive user, a username twin and an e-mail twin (by case);
* products with a long name, a zero price, an unknown category;
* orders: one complete, one whose items the Django cascade wiped (total kept),
  one with a status the shop does not know.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from shop.importer.django import ImportOptions, import_django
from shop.importer.report import Report
from shop.settings import Settings
from tests.support.django_schema import DJANGO_SCHEMA
from tests.support.servers import postgres_server_url, with_database

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

PASSWORDS = {
    # user id: the password the user had in the Django app
    1: "Admin-Django-pass-1",
    2: "Alice-Django-pass-2",
    3: "Bruno-Django-pass-3",
    4: "Chloe-Django-pass-4",
    6: "Eve-Django-pass-6",
    7: "Eve-Django-pass-7",
    8: "Frank-Django-pass-8",
    9: "Alice2-Django-pass-9",
    10: "Gus-Django-pass-10",
}
HASHERS = {1: "pbkdf2_sha256", 2: "pbkdf2_sha1", 3: "argon2", 4: "scrypt", 6: "pbkdf2_sha256"}
"""Which Django hasher made each user's hash; the rest use a cheap PBKDF2 (see `_hash`)."""


def _configure_django() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            PASSWORD_HASHERS=[
                "django.contrib.auth.hashers.PBKDF2PasswordHasher",
                "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
                "django.contrib.auth.hashers.Argon2PasswordHasher",
                "django.contrib.auth.hashers.ScryptPasswordHasher",
            ]
        )


def _hash(user_id: int) -> str:
    """A real Django hash; users without a chosen hasher get PBKDF2 with fewer rounds
    (older rows carry fewer), so the fixture stays quick."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password

    hasher = HASHERS.get(user_id)
    if hasher is not None:
        return make_password(PASSWORDS[user_id], hasher=hasher)
    return PBKDF2PasswordHasher().encode(PASSWORDS[user_id], f"salt{user_id}x", iterations=1000)


@dataclass
class SourceUser:
    id: int
    username: str
    email: str
    password: str
    is_superuser: bool = False
    is_staff: bool = False
    is_active: bool = True
    phone: str | None = None
    address: str | None = None
    last_login: datetime | None = None


@pytest.fixture(scope="session")
def django_hashes() -> dict[int, str]:
    from django.contrib.auth.hashers import make_password

    _configure_django()
    hashes = {user_id: _hash(user_id) for user_id in PASSWORDS}
    hashes[5] = make_password(None)  # unusable: "!" and 40 random characters
    hashes[11] = "bcrypt_sha256$$2b$12$" + "a" * 53  # a bcrypt hash (the shop has no bcrypt)
    return hashes


def source_users(hashes: dict[int, str]) -> list[SourceUser]:
    return [
        SourceUser(1, "admin", "admin@example.com", hashes[1], is_superuser=True),
        SourceUser(2, "alice", "Alice@Example.com", hashes[2], phone=None, address=None),
        SourceUser(3, "bruno", "bruno@example.com", hashes[3], phone="+33 6 12", address="Lyon"),
        SourceUser(4, "chloe", "chloe@example.com", hashes[4], is_staff=True),
        SourceUser(5, "dora", "dora@example.com", hashes[5]),
        SourceUser(8, "frank", "frank@example.com", hashes[8], is_active=False),
        SourceUser(9, "Alice", "alice2@example.com", hashes[9]),
        SourceUser(10, "gus", "gus@example.com", hashes[10]),
        SourceUser(11, "hana", "hana@example.com", hashes[11]),
    ]


TWINS = [
    # e-mails that differ only by case; 7 logged in more recently than 6
    SourceUser(6, "eve", "Eve@example.com", "", last_login=T0 + timedelta(days=1)),
    SourceUser(7, "eve2", "eve@example.com", "", last_login=T0 + timedelta(days=9)),
]

LONG_NAME = "Deluxe " + "very " * 45 + "long lamp"
PRODUCTS = [
    # id, name, description, price, stock, category
    (1, "Lamp", "A desk lamp", "19.99", 10, "electronics"),
    (2, LONG_NAME, "Long-named", "5.00", 3, "home"),
    (3, "Free sample", "Costs nothing", "0.00", 100, "books"),
    (4, "Rake", "For leaves", "12.50", 7, "garden"),
]
ORDERS = [
    # id, status, user_id, total, items [(item id, product id, quantity, price)]
    (1, "pending", 2, "39.98", [(1, 1, 2, "19.99")]),
    (2, "delivered", 3, "29.99", [(2, 1, 1, "19.99"), (3, 2, 2, "5.00")]),
    (3, "shipped", 4, "50.00", []),  # its items went with a deleted product
    (4, "lost-in-space", 10, "12.50", [(4, 4, 1, "12.50")]),
    (5, "cancelled", 10, "12.50", [(5, 4, 1, "12.50")]),
]


@pytest.fixture(scope="session")
def django_source_url() -> Iterator[str]:
    server_url, handle = postgres_server_url()
    name = f"importer_src_{uuid.uuid4().hex[:10]}"

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield with_database(server_url, name)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    del handle


async def build_source(url: str, users: list[SourceUser], *, twins: bool = True) -> None:
    """Rebuild the Django schema at ``url`` and fill it with ``users`` (+ twins), products, orders."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        await conn.execute(DJANGO_SCHEMA)
        rows = [*users, *(TWINS if twins else [])]
        await conn.executemany(
            "INSERT INTO users_user (id, password, last_login, is_superuser, username, first_name,"
            " last_name, is_staff, is_active, date_joined, email, phone, address)"
            " VALUES ($1, $2, $3, $4, $5, '', '', $6, $7, $8, $9, $10, $11)",
            [
                (
                    u.id, u.password or "!twin", u.last_login, u.is_superuser, u.username,
                    u.is_staff, u.is_active, T0 - timedelta(days=u.id), u.email, u.phone,
                    u.address,
                )
                for u in rows
            ],
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO products_product VALUES ($1, $2, $3, $4::numeric, $5, $6, $7, $8)",
            [(*p, T0, T0 + timedelta(hours=1)) for p in PRODUCTS],
        )
        for order_id, status, user_id, total, items in ORDERS:
            await conn.execute(
                "INSERT INTO orders_order VALUES ($1, $2, $3, $4, $5, $6::numeric)",
                order_id, status, T0 + timedelta(days=order_id), T0 + timedelta(days=order_id, hours=2),
                user_id, total,
            )  # fmt: skip
            await conn.executemany(
                "INSERT INTO orders_orderitem VALUES ($1, $3, $4::numeric, $5, $2)",
                [(item_id, product_id, qty, price, order_id) for item_id, product_id, qty, price in items],
            )  # fmt: skip
        # Django's identity sequences, as after inserting these rows through the ORM.
        for table in ("users_user", "products_product", "orders_order", "orders_orderitem"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    finally:
        await conn.close()


@pytest.fixture
async def django_source(django_source_url: str, django_hashes: dict[int, str]) -> str:
    """The source database without e-mail twins (most tests); see `django_source_with_twins`."""
    await build_source(django_source_url, source_users(django_hashes), twins=False)
    return django_source_url


@pytest.fixture
async def django_source_with_twins(django_source_url: str, django_hashes: dict[int, str]) -> str:
    users = source_users(django_hashes)
    await build_source(django_source_url, users, twins=True)
    conn = await asyncpg.connect(django_source_url)
    try:
        await conn.execute("UPDATE users_user SET password = $2 WHERE id = $1", 6, django_hashes[6])
        await conn.execute("UPDATE users_user SET password = $2 WHERE id = $1", 7, django_hashes[7])
        await conn.execute(
            "INSERT INTO orders_order VALUES (6, 'pending', $1, $1, 6, 19.99), "
            "(7, 'pending', $1, $1, 7, 19.99)",
            T0,
        )
        await conn.execute(
            "INSERT INTO orders_orderitem VALUES (6, 1, 19.99, 6, 1), (7, 1, 19.99, 7, 1)"
        )
    finally:
        await conn.close()
    return django_source_url


async def run_import(settings: Settings, source: str, **options: Any) -> tuple[Report, str]:
    """One import pass, as `shop import django` runs it; returns the report and what it printed."""
    out = io.StringIO()
    report = await import_django(settings, source, ImportOptions(**options), out)
    report.print(out, problems_per_rule=None)
    return report, out.getvalue()


async def source_execute(url: str, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()
