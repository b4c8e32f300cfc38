"""Settings come from the environment in one place; a bad value is one clear line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal

import pytest

from shop.settings import ConfigError, Settings

BASE = {"SECRET_KEY": "s" * 32, "DATABASE_URL": "postgresql://u:p@db:5432/shop"}


def test_defaults_follow_the_spec():
    settings = Settings.from_env(BASE)

    assert settings.debug is False
    assert settings.http.allowed_hosts == ("localhost", "127.0.0.1")
    assert settings.min_order_amount == Decimal("1.00")
    assert settings.cache.servers == ()  # no memcached: the in-process cache
    assert settings.jobs.shipped_webhook_url is None
    assert settings.tokens.access_minutes == 60
    assert settings.tokens.refresh_days == 7
    assert settings.database.url == "postgresql+asyncpg://u:p@db:5432/shop"


@pytest.mark.parametrize(
    ("raw", "servers"),
    [
        ("mc1:11211", (("mc1", 11211),)),  # one server, as before
        ("memcached://mc1:11211", (("mc1", 11211),)),  # the URL spelling
        (
            "mc1:11211, mc2:11212,mc3:11213",
            (("mc1", 11211), ("mc2", 11212), ("mc3", 11213)),
        ),  # a pool, spaces allowed
        ("", ()),  # unset: the in-process cache
    ],
)
def test_memcached_url_is_one_server_or_a_comma_separated_list(
    raw: str, servers: tuple[tuple[str, int], ...]
) -> None:
    cache = Settings.from_env({**BASE, "MEMCACHED_URL": raw}).cache

    assert cache.servers == servers


def test_cache_key_prefix_is_used_as_given_with_a_separator() -> None:
    assert Settings.from_env({**BASE, "CACHE_KEY_PREFIX": "prod"}).cache.key_prefix == "prod:"
    assert Settings.from_env(BASE).cache.key_prefix is None  # derived from the database


def test_webhook_secret_falls_back_to_a_key_derived_from_secret_key():
    one = Settings.from_env(BASE).jobs.webhook_secret
    other = Settings.from_env({**BASE, "SECRET_KEY": "t" * 32}).jobs.webhook_secret

    assert one and one != BASE["SECRET_KEY"]
    assert one != other


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),  # required outside dev mode
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),  # too short to sign anything
        ({"SECRET_KEY": "s" * 31}, "SECRET_KEY"),  # HS256 wants 32 bytes; PyJWT warns below
        ({"DATABASE_URL": ""}, "DATABASE_URL"),  # required outside dev mode
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),  # PostgreSQL only
        ({"DEBUG": "maybe"}, "DEBUG"),  # not a boolean
        ({"MIN_ORDER_AMOUNT": "abc"}, "MIN_ORDER_AMOUNT"),  # not a decimal
        ({"MIN_ORDER_AMOUNT": "-1"}, "MIN_ORDER_AMOUNT"),  # negative
        ({"MEMCACHED_URL": "memcached"}, "MEMCACHED_URL"),  # no port
        ({"MEMCACHED_URL": "mc1:11211,mc2"}, "MEMCACHED_URL"),  # one server without a port
        ({"MEMCACHED_URL": "mc1:11211,mc1:11211"}, "MEMCACHED_URL"),  # listed twice
        ({"CACHE_KEY_PREFIX": "has space"}, "CACHE_KEY_PREFIX"),  # not allowed in a memcached key
        ({"CACHE_KEY_PREFIX": "much-too-long"}, "CACHE_KEY_PREFIX"),  # keys must stay short
        ({"DB_POOL_SIZE": "0"}, "DB_POOL_SIZE"),  # a pool needs a connection
        ({"CACHE_TIMEOUT": "fast"}, "CACHE_TIMEOUT"),  # not a number
        ({"SHIPPED_WEBHOOK_URL": "ftp://x"}, "SHIPPED_WEBHOOK_URL"),  # not http(s)
        ({"PASSWORD_HASH_TIME_COST": "0"}, "PASSWORD_HASH_TIME_COST"),  # Argon2 needs a pass
        ({"PASSWORD_HASH_PARALLELISM": "two"}, "PASSWORD_HASH_PARALLELISM"),  # not an integer
        # Argon2 needs 8 KiB per lane
        (
            {"PASSWORD_HASH_PARALLELISM": "4", "PASSWORD_HASH_MEMORY_KIB": "16"},
            "PASSWORD_HASH_MEMORY_KIB",
        ),
    ],
)
def test_bad_value_names_the_variable(overrides, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, **overrides})

    assert str(caught.value).startswith(variable + ":")


def test_dev_mode_generates_a_secret_and_says_so():
    settings = Settings.from_env({}, dev_mode=True)

    assert settings.generated_secret is True
    assert len(settings.tokens.secret_key) >= 32


def test_cli_stops_with_one_line_naming_the_variable():
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL"}}
    env["DATABASE_URL"] = "postgresql://u:p@127.0.0.1:1/x"
    result = subprocess.run(
        [sys.executable, "-m", "shop.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SECRET_KEY" in lines[0]


def test_dev_mode_applies_the_same_secret_key_rule():
    """`shop dev` used to accept a 5-character SECRET_KEY that `shop run` refused."""
    env = {"SECRET_KEY": "short"}

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env(env, dev_mode=True)
    assert Settings.from_env({"SECRET_KEY": "k" * 32}, dev_mode=True).tokens.secret_key == "k" * 32


def test_a_database_url_that_is_not_a_url_is_named_plainly():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "DATABASE_URL": "nonsense"})

    message = str(caught.value)
    assert message.startswith("DATABASE_URL:")
    assert "not a URL" in message and "nonsense://" not in message


def test_a_wrong_scheme_is_named_without_the_rest_of_the_url():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "DATABASE_URL": "mysql://root:hunter2@db/x"})

    assert "mysql://" in str(caught.value) and "hunter2" not in str(caught.value)
