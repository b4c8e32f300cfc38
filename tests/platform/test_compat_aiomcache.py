"""The aiomcache internals `shop._compat.aiomcache` relies on are still there, as it expects.

If one of these fails after an aiomcache upgrade, read the module's docstring:
each fix may now be unnecessary or need rewriting. Raise the version bound in
pyproject.toml only once this passes again (and the cache tests with it).
"""

from __future__ import annotations

import inspect

import aiomcache
import aiomcache.client
from aiomcache.pool import Connection, MemcachePool

from shop._compat.aiomcache import CancelSafePool, Client


def test_aiomcache_is_the_version_the_fixes_were_written_for() -> None:
    assert aiomcache.__version__.startswith("0.8."), aiomcache.__version__


def test_the_pool_internals_the_fixes_use_still_exist() -> None:
    pool = MemcachePool("127.0.0.1", 1, minsize=1, maxsize=2)

    assert {"_pool", "_in_use", "_maxsize"} <= set(vars(pool))
    for name in ("_do_close", "_create_new_conn", "size", "acquire", "release"):
        assert callable(getattr(MemcachePool, name)), name
    assert set(Connection._fields) == {"reader", "writer"}


def test_the_client_internals_the_fixes_override_still_exist_with_their_signatures() -> None:
    expected = {
        "_execute_simple_command": ["self", "conn", "raw_command"],
        "_incr_decr": ["self", "conn", "command", "key", "delta"],
        "_validate_key": ["self", "key"],
    }
    for name, parameters in expected.items():
        assert list(inspect.signature(getattr(aiomcache.Client, name)).parameters) == parameters
    multi_get = inspect.signature(aiomcache.Client._multi_get)
    assert "with_cas" in multi_get.parameters
    assert callable(aiomcache.client.acquire)


def test_our_client_uses_our_pool() -> None:
    client = Client("127.0.0.1", 1, pool_size=3)

    assert isinstance(client._pool, CancelSafePool)
    assert client._pool._maxsize == 3
