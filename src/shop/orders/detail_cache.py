"""An order's cached detail: the encoded body, with its owner's id in front.

The entry carries the owner so the ownership check runs in memory before any
cached byte is served, without a PostgreSQL round trip on a hit
(`OrderReader.detail`, and the route's `before_request` hook that answers hits
before Litestar resolves arguments). An order's owner never changes, and the
entry is version-keyed like the body, so the two cannot disagree.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import msgspec

from shop.cache import ORDERS, Lookup
from shop.orders.access import require_owner_or_staff
from shop.schemas import MAX_ID

if TYPE_CHECKING:
    from shop.accounts.security import CurrentUser
    from shop.orders import schemas

__all__ = ["cached_body", "detail_lookup_key", "encode_order", "pack_entry", "unpack_entry"]

_encoder = msgspec.json.Encoder()

_OWNER = struct.Struct(">q")
"""The owner's id, in front of the encoded order in its cache entry."""


def encode_order(order: schemas.Order) -> bytes:
    return _encoder.encode(order)


def pack_entry(owner: int, body: bytes) -> bytes:
    return _OWNER.pack(owner) + body


def unpack_entry(raw: bytes) -> tuple[int, bytes] | None:
    """``(owner id, body)``; None for an entry too short to be one of ours (a miss)."""
    if len(raw) <= _OWNER.size:
        return None
    (owner,) = _OWNER.unpack_from(raw)
    return owner, raw[_OWNER.size :]


def detail_lookup_key(order_id: int) -> tuple[str, str] | None:
    """``(namespace, suffix)`` of an order's cached detail; None for an id no order can have."""
    if not 1 <= order_id <= MAX_ID:
        return None
    return ORDERS, str(order_id)


def cached_body(found: Lookup | None, user: CurrentUser) -> bytes | None:
    """The cached order body if there is one, after the same ownership check as `OrderReader.detail`.

    None when nothing is cached (the caller goes to PostgreSQL); `OrderNotFound`
    when a cached order belongs to someone else.
    """
    if found is None or found.value is None or (entry := unpack_entry(found.value)) is None:
        return None
    owner, body = entry
    require_owner_or_staff(owner, user)
    return body
