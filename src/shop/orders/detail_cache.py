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
entry is the order's JSON, encoded once when the entry is built and cut around
each item's stock figure (`OrderEntry`); a hit splices the current figures in.
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

__all__ = ["DETAIL", "Entry", "OrderEntry", "encode_order", "pack_entry", "unpack_entry"]

_encoder = msgspec.json.Encoder()
_packer = msgspec.msgpack.Encoder()


class OrderEntry(msgspec.Struct, array_like=True):
    """An order as its cache entry holds it: its JSON cut around each item's stock
    figure (``parts[0] + stock of item 0 + parts[1] + ...``), the items' product
    ids, and the figures as the order was read (shown if a figure cannot be read)."""

    ids: list[int]
    stocks: list[int]
    parts: list[bytes]


_unpacker = msgspec.msgpack.Decoder(OrderEntry)

_OWNER = struct.Struct(">q")
"""The owner's id, in front of the packed order in its cache entry."""

_CUT = -1
"""The stock figure the order is encoded with to find where figures go: no product's stock
is negative, and ``"stock":`` outside a string is always an item's figure."""

Entry = tuple[int, OrderEntry]
"""``(owner id, order)``: a decoded entry."""


def encode_order(order: schemas.Order) -> bytes:
    return _encoder.encode(order)


def pack_entry(order: schemas.Order) -> bytes:
    """The order's entry: its owner, then its JSON cut around the stock figures."""
    items = order.order_items
    stocks = [item.product.stock for item in items]
    for item in items:
        item.product.stock = _CUT
    try:
        parts = encode_order(order).split(b'"stock":%d' % _CUT)
    finally:
        for item, figure in zip(items, stocks, strict=True):
            item.product.stock = figure
    if len(parts) != len(items) + 1:  # cannot happen: one figure per item
        raise RuntimeError("an order's JSON does not have one stock figure per item")
    parts[:-1] = [part + b'"stock":' for part in parts[:-1]]
    entry = OrderEntry([item.product.id for item in items], stocks, parts)
    return _OWNER.pack(order.user) + _packer.encode(entry)


def unpack_entry(raw: bytes) -> Entry | None:
    """``(owner id, order)``; None for bytes that are not one of our entries (a miss)."""
    if len(raw) <= _OWNER.size:
        return None
    (owner,) = _OWNER.unpack_from(raw)
    try:
        entry = _unpacker.decode(memoryview(raw)[_OWNER.size :])
    except msgspec.DecodeError:
        return None
    if not len(entry.ids) == len(entry.stocks) == len(entry.parts) - 1:
        return None
    return owner, entry


def _suffix(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    order_id = connection.path_params.get("order_id")
    if not isinstance(order_id, int) or not 1 <= order_id <= MAX_ID:
        return None  # no order can have it: the handler answers
    return str(order_id)


def _shows(entry: Entry) -> list[int]:
    return list(dict.fromkeys(entry[1].ids))


def _check(entry: Entry, user: Any) -> None:
    require_owner_or_staff(entry[0], user)


def _render(_: object, entry: Entry, stocks: Mapping[int, int]) -> bytes:
    """The order as JSON, each item showing its product's stock as it is now."""
    order = entry[1]
    parts = order.parts
    out = [parts[0]]
    for id_, held, part in zip(order.ids, order.stocks, parts[1:], strict=True):
        out.append(b"%d" % stocks.get(id_, held))
        out.append(part)
    return b"".join(out)


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
