"""Cached reads: one layer that owns the key, the version, fresh figures and access checks.

A domain declares each cached route once, as a `CachedRead` (``layer.py``):
its version namespace, how the key suffix comes from the request, how to
decode an entry, which fresh figures it shows (`FreshFigures`, ``fresh.py``:
a product's stock), the access check of an entry for the caller (an order's
owner) and how to render the body. It puts that in the route's ``opt`` under
`CACHED_READ` with `serve_hit` as the route's ``before_request`` hook, and the
handler reads a miss through with `read_through`. Nothing else about caching
lives in the domains: they keep their queries and their writes (which bump
versions and publish fresh figures after commit).

How a read flows:

1. Authentication (`shop.accounts.security`), once the token is verified, asks
   `wanted` what the route will read and fetches the caller's snapshot, the
   entry under its namespace's version and the fresh figures the entry showed
   last time (remembered per suffix in this process, or known from the suffix:
   a product detail) in one memcached round trip (`Cache.get_and_lookup`), and
   `keep`\\ s the lookup with its suffix, computed once per request.
2. The hook (`serve_hit`) runs the read's request checks (a list's repeated
   parameters), decodes the entry, runs the access check *before* anything is
   served, takes the fresh figures read with it (a second round trip only for
   those not named up front, PostgreSQL only for those missing), renders, and
   answers, with an ETag and a 304 where the read is conditional. A hit is one
   memcached round trip and no SQL.
3. Anything else falls through to the handler, which calls `read_through` with
   the same lookup: a miss is built once per key and process (`flight.fill`:
   concurrent misses of one key wait for the first one's build, no stampede),
   stored under the version read *before* the build (a write committed
   meanwhile bumps it, so what the miss stores is never read again), and the
   figures the build read are published as a reader's fill. With memcached down
   every lookup is a miss without a key: answers come from PostgreSQL, nothing
   is stored.

The freshness rule (issue 12 point 5): entries never hold a fresh figure; each
figure has a stamped entry of its own that writers publish after commit and
before their response, and that only a newer version can replace
(`fresh.FreshFigures`). So a client never reads data older than its own write,
on any instance, while an order leaves every cached page alive.

The platform never imports a domain: the declarations live in the domains
(`shop.catalog.reader`, `shop.orders.detail_cache`, `shop.catalog.stock`).
"""

from __future__ import annotations

from shop.reads.flight import DEFAULT_WAIT, SingleFlight, fill, single_flight
from shop.reads.fresh import Figure, FreshFigures
from shop.reads.layer import (
    CACHED_READ,
    Built,
    CachedRead,
    Encoded,
    etag_matches,
    keep,
    kept,
    read_through,
    respond,
    serve_hit,
    wanted,
)

__all__ = [
    "CACHED_READ",
    "DEFAULT_WAIT",
    "Built",
    "CachedRead",
    "Encoded",
    "Figure",
    "FreshFigures",
    "SingleFlight",
    "etag_matches",
    "fill",
    "keep",
    "kept",
    "read_through",
    "respond",
    "serve_hit",
    "single_flight",
    "wanted",
]
