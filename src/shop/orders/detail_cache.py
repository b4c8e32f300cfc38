"""An order's cached detail: the order, with its owner's id in front, and fresh stock.

The entry carries the owner so the ownership check runs in memory before any
cached byte is served, without a PostgreSQL round trip on a hit. An order's
owner never changes, and the entry is version-keyed like the order, so the two
cannot disagree.

An item shows its product's stock as it is now. That figure is not taken from
the entry (it would go stale with the next order of that product, someone
else's or the owner's own): it comes from the product's stock entry
(`shop.catalog.stock`), read in the same memcached round trip as the entry
once this process has seen the order's products (they never change). So the
entry is the order as msgpack, and a hit encodes it with the current figures.
The product's ``updated_at`` changes only when staff edit the product, which
bumps the orders' version.

`DETAIL` declares that read for the cached-read layer (`shop.reads`), which
runs it: the lookup with the caller's snapshot, the owner check before
anything is served, the fresh figures, the miss read once per order and process.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar.connection import ASGIConnection

from shop.cache import ORDERS
from shop.catalog import stock
from shop.orders import schemas
from shop.orders.access import require_owner_or_staff
from shop.reads import CachedRead
from shop.schemas import MAX_ID
from shop.settings import Settings

__all__ = ["DETAIL", "Entry", "encode_order", "pack_entry", "unpack_entry"]

_encoder = msgspec.json.Encoder()
_packer = msgspec.msgpack.Encoder()
_unpacker = msgspec.msgpack.Decoder(schemas.Order)

_OWNER = struct.Struct(">q")
"""The owner's id, in front of the packed order in its cache entry."""

Entry = tuple[int, schemas.Order]
"""``(owner id, order)``: a decoded entry."""


def encode_order(order: schemas.Order) -> bytes:
    return _encoder.encode(order)


def pack_entry(order: schemas.Order) -> bytes:
    return _OWNER.pack(order.user) + _packer.encode(order)


def unpack_entry(raw: bytes) -> Entry | None:
    """``(owner id, order)``; None for bytes that are not one of our entries (a miss)."""
    if len(raw) <= _OWNER.size:
        return None
    (owner,) = _OWNER.unpack_from(raw)
    try:
        return owner, _unpacker.decode(memoryview(raw)[_OWNER.size :])
    except msgspec.DecodeError:
        return None


def _suffix(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    order_id = connection.path_params.get("order_id")
    if not isinstance(order_id, int) or not 1 <= order_id <= MAX_ID:
        return None  # no order can have it: the handler answers
    return str(order_id)


def _shows(entry: Entry) -> list[int]:
    return list(dict.fromkeys(item.product.id for item in entry[1].order_items))


def _check(entry: Entry, user: Any) -> None:
    require_owner_or_staff(entry[0], user)


def _render(_: object, entry: Entry, stocks: Mapping[int, int]) -> bytes:
    """The order as JSON, each item showing its product's stock as it is now."""
    order = entry[1]
    for item in order.order_items:
        item.product.stock = stocks.get(item.product.id, item.product.stock)
    return encode_order(order)


def _order_ttl(settings: Settings) -> int:
    return settings.cache.order_ttl


def _products_ttl(settings: Settings) -> int:
    return settings.cache.products_ttl


DETAIL: CachedRead[Entry] = CachedRead(
    name="order_detail",
    namespace=ORDERS,
    suffix=_suffix,
    decode=unpack_entry,
    figures=stock.STOCK,
    shows=_shows,
    render=_render,
    entry_ttl=_order_ttl,
    figures_ttl=_products_ttl,
    check=_check,
    remember=65_536,  # a few dozen bytes each
)
"""An order's detail, keyed by its id, for its owner or staff (anyone else: 404)."""
