"""The cache's counters, which /metrics exports (hit ratio, bumps): one event, one count."""

from __future__ import annotations

import signal

from shop.cache import PRODUCTS, Cache, InProcessCache, Lookup
from shop.cache.base import version_key
from tests.cache.test_memcached import connect
from tests.conftest import memcached_url
from tests.support.servers import Memcached


async def _miss_then_hit_then_bump(cache: Cache) -> list[tuple[int, int, int]]:
    seen = []
    found = await cache.lookup(PRODUCTS, "page-1")  # nothing cached yet
    seen.append((cache.stats.misses, cache.stats.hits, cache.stats.bumps))
    assert found.key is not None and found.value is None
    await cache.set(found.key, b"[]", 60)
    assert (await cache.lookup(PRODUCTS, "page-1")).value == b"[]"
    seen.append((cache.stats.misses, cache.stats.hits, cache.stats.bumps))
    await cache.bump(PRODUCTS)
    assert (await cache.lookup(PRODUCTS, "page-1")).value is None  # fresh after the bump
    seen.append((cache.stats.misses, cache.stats.hits, cache.stats.bumps))
    return seen


async def test_in_process_cache_counts_each_miss_hit_and_bump_once() -> None:
    cache = InProcessCache()

    seen = await _miss_then_hit_then_bump(cache)

    assert seen == [(1, 0, 0), (1, 1, 0), (2, 1, 1)]


async def test_memcached_cache_counts_each_miss_hit_and_bump_once(memcached: Memcached) -> None:
    cache = connect(memcached_url(memcached), timeout=2.0)  # a loaded machine is no miss
    try:
        await cache.bump(PRODUCTS)  # a namespace this test alone uses from here on
        cache.stats.misses = cache.stats.hits = cache.stats.bumps = 0

        seen = await _miss_then_hit_then_bump(cache)
    finally:
        await cache.close()

    assert seen == [(1, 0, 0), (1, 1, 0), (2, 1, 1)]


async def test_an_entry_under_a_long_or_spaced_suffix_is_still_cached(memcached: Memcached) -> None:
    cache = connect(memcached_url(memcached), timeout=2.0)
    try:
        for suffix in ("search=desk lamp", "x" * 300):  # unsafe as a memcached key: hashed
            found = await cache.lookup(PRODUCTS, suffix)
            assert found.key is not None
            await cache.set(found.key, b"[1]", 60)

            assert (await cache.lookup(PRODUCTS, suffix)).value == b"[1]"
    finally:
        await cache.close()


async def test_a_version_counter_holding_no_number_is_never_cached_under_and_counts_one_error(
    memcached: Memcached,
) -> None:
    cache = connect(memcached_url(memcached), timeout=2.0)
    namespace = f"garbled_{id(cache)}"
    try:
        await cache.set(version_key(namespace), b"garbage", 60)  # a stray write to the counter

        found = await cache.lookup(namespace, "page-1")

        assert found == Lookup(None, None)  # no key: nothing gets stored under a made-up version
        assert (cache.stats.errors, cache.stats.misses) == (1, 1)
        assert await cache.version(namespace) == 0  # "unknown", as the Cache interface says
    finally:
        await cache.close()


async def test_reads_memcached_does_not_answer_count_one_miss_per_value() -> None:
    server = Memcached().start()
    cache = connect(server.url, circuit_seconds=0)
    try:
        assert (await cache.lookup(PRODUCTS, "page-1")).key is not None  # the version is known
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # memcached hangs: every get times out
        misses = cache.stats.misses

        alone = await cache.lookup(PRODUCTS, "page-1")
        found = await cache.get_and_lookup("user_1", PRODUCTS, "page-1")
        await cache.bump(PRODUCTS)  # not delivered: pending
        pending = await cache.lookup(PRODUCTS, "page-1")

        assert alone == pending == Lookup(None, None) and found == (None, Lookup(None, None))
        assert cache.stats.misses - misses == 4  # page; user snapshot and page; page
    finally:
        if server.process is not None:
            server.process.send_signal(signal.SIGCONT)
        await cache.close()
        server.stop()
