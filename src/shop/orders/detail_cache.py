"""An order's cached detail: the order, with its owner's id in front, and fresh stock.

The entry carries the owner so the ownership check runs in memory before any
cached byte is served, without a PostgreSQL round trip on a hit
(`OrderReader.detail`, and the route's `before_request` hook that answers hits
before Litestar resolves arguments). An order's owner never changes, and the
entry is version-keyed like the order, so the two cannot disagree.

An item shows its product's stock as it is now. That figure is not taken from
the entry (it would go stale with the next order of that product, someone
else's or the owner's own): it comes from the product's stock entry
(`shop.catalog.stock`), read in the same memcached round trip as the entry
once this process knows the order's products (they never change:
`remember`/`expected`). So the entry is the order as msgpack, and a hit
encodes it with the current figures. The product's ``updated_at`` changes
only when staff edit the product, which bumps the orders' version.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import msgspec

from shop.cache import ORDERS, Cache, Lookup
from shop.catalog import stock
from shop.orders import schemas
from shop.orders.access import require_owner_or_staff
from shop.schemas import MAX_ID

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from shop.accounts.security import CurrentUser

__all__ = [
    "cached_order",
    "detail_lookup",
    "encode_order",
    "pack_entry",
    "remember",
    "render",
    "unpack_entry",
]

_encoder = msgspec.json.Encoder()
_packer = msgspec.msgpack.Encoder()
_unpacker = msgspec.msgpack.Decoder(schemas.Order)

_OWNER = struct.Struct(">q")
"""The owner's id, in front of the packed order in its cache entry."""

_REMEMBERED_ORDERS = 65_536
"""Orders whose product ids this process remembers (a few dozen bytes each)."""
_products_of: dict[int, tuple[int, ...]] = {}


def encode_order(order: schemas.Order) -> bytes:
    return _encoder.encode(order)


def pack_entry(order: schemas.Order) -> bytes:
    return _OWNER.pack(order.user) + _packer.encode(order)


def unpack_entry(raw: bytes) -> tuple[int, schemas.Order] | None:
    """``(owner id, order)``; None for bytes that are not one of our entries (a miss)."""
    if len(raw) <= _OWNER.size:
        return None
    (owner,) = _OWNER.unpack_from(raw)
    try:
        return owner, _unpacker.decode(memoryview(raw)[_OWNER.size :])
    except msgspec.DecodeError:
        return None


def remember(order: schemas.Order) -> None:
    """The order's products, so its next read fetches their stock with the entry."""
    if order.id not in _products_of and len(_products_of) >= _REMEMBERED_ORDERS:
        _products_of.pop(next(iter(_products_of)))  # the oldest: dicts keep insertion order
    _products_of[order.id] = tuple(item.product.id for item in order.order_items)


def detail_lookup(order_id: int) -> tuple[str, str, list[str]] | None:
    """What an order's detail reads from the cache: its entry and, when known, the
    stock entries of its products. None for an id no order can have."""
    if not 1 <= order_id <= MAX_ID:
        return None
    keys = [stock.stock_key(product_id) for product_id in _products_of.get(order_id, ())]
    return ORDERS, str(order_id), keys


def cached_order(found: Lookup | None, user: CurrentUser) -> schemas.Order | None:
    """The cached order if there is one, after the same ownership check as `OrderReader.detail`.

    None when nothing is cached (the caller goes to PostgreSQL); `OrderNotFound`
    when a cached order belongs to someone else.
    """
    if found is None or found.value is None or (entry := unpack_entry(found.value)) is None:
        return None
    owner, order = entry
    require_owner_or_staff(owner, user)
    return order


async def render(
    order: schemas.Order, cache: Cache, engine: AsyncEngine, ttl: int, found: Lookup | None
) -> bytes:
    """The order as JSON, each item showing its product's stock as it is now."""
    ids = list(dict.fromkeys(item.product.id for item in order.order_items))
    stocks = await stock.read(cache, engine, ids, ttl, known=found.more if found else None)
    for item in order.order_items:
        item.product.stock = stocks.get(item.product.id, item.product.stock)
    remember(order)
    return encode_order(order)
