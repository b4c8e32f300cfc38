"""The version-keyed cache: memcached through aiomcache, or an in-process dict in dev mode.

Keys embed a namespace version (``products_list_v<version>_<query>``). A change
that could alter a cached response bumps the version (one ``incr``, O(1)); the
old keys are never read again and expire by TTL. No key scans.

`Cache.lookup(namespace, suffix)` is the read path for versioned entries: it
returns the entry (or None) and the key to store a freshly built value under.
A ``Lookup`` without a key means "the version is unknown right now": build the
value from the database and do not store it.

How the pieces fit:

* `base`: the `Cache` interface, namespaces, key rules, how a fresh version is chosen.
* `inprocess`: `InProcessCache`, dev mode.
* `memcached`: `MemcachedCache`, one or several servers (``MEMCACHED_URL``
  is a comma-separated list): batching, versions, pending invalidations.
* `ring`: which server holds a key (rendezvous hashing; counters on two).
* `node`: one server: its connections, timeout and circuit breaker.
* `shop._compat.aiomcache`: the fixes to aiomcache's internals.
* `shop.identity`: the prefix naming the database, in front of every key on
  the wire, so shops sharing memcached never read each other's entries.
"""

from __future__ import annotations

from shop.cache.base import (
    ORDERS,
    PRODUCT_DETAIL,
    PRODUCTS,
    Cache,
    CacheStats,
    KeyPrefix,
    Lookup,
    make_key,
    stamped,
    unstamp,
)
from shop.cache.inprocess import InProcessCache
from shop.cache.memcached import MemcachedCache
from shop.settings import CacheSettings

__all__ = [
    "ORDERS",
    "PRODUCTS",
    "PRODUCT_DETAIL",
    "Cache",
    "CacheStats",
    "InProcessCache",
    "KeyPrefix",
    "Lookup",
    "MemcachedCache",
    "create_cache",
    "make_key",
    "stamped",
    "unstamp",
]


def create_cache(settings: CacheSettings, *, key_prefix: KeyPrefix) -> Cache:
    """The configured backend. ``key_prefix`` names the database (`shop.identity`);
    ``CACHE_KEY_PREFIX`` wins over it. The in-process cache needs none."""
    if not settings.servers:
        return InProcessCache()
    return MemcachedCache.of(
        settings.servers, settings.timeout, key_prefix=settings.key_prefix or key_prefix
    )
