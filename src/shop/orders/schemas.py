"""Wire schemas of the orders domain (msgspec Structs).

Field names follow the Django app shop replaces. Money is a two-place decimal
string (`MoneyStr`). An item's ``product`` describes what was bought: name,
description, category and price are the snapshot taken at purchase, while
``stock`` and the timestamps come from the product row as it is now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shop._compat.msgspec import field_of
from shop.errors import InvalidInput
from shop.orders.models import OrderStatus
from shop.schemas import MAX_ID, MoneyStr

__all__ = [
    "MAX_QUANTITY",
    "Order",
    "OrderCreate",
    "OrderItem",
    "OrderItemIn",
    "OrderStatusUpdate",
    "OrderedProduct",
    "StatusChange",
    "strict_order_create",
]

MAX_QUANTITY = 10_000
"""Per-line ceiling: far above any real basket, far below integer overflow."""

PositiveId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="Product id")]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY, description="Units to buy")]


class OrderItemIn(msgspec.Struct, forbid_unknown_fields=True):
    product_id: PositiveId
    quantity: Quantity


class OrderCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A basket: at least one line, each product at most once."""

    items: Annotated[list[OrderItemIn], msgspec.Meta(min_length=1, max_length=1000)]


class OrderStatusUpdate(msgspec.Struct, forbid_unknown_fields=True):
    status: OrderStatus


class OrderedProduct(msgspec.Struct):
    id: int
    name: str
    description: str
    price: MoneyStr
    stock: int
    category: str
    created_at: datetime
    updated_at: datetime


class OrderItem(msgspec.Struct):
    id: int
    product: OrderedProduct
    quantity: int
    price_at_purchase: MoneyStr
    total_price: MoneyStr


class StatusChange(msgspec.Struct):
    from_status: OrderStatus | None
    to_status: OrderStatus
    actor: int | None
    """Id of the user who made the change."""
    at: datetime


class Order(msgspec.Struct):
    id: int
    user: int
    """Id of the customer who placed the order."""
    status: OrderStatus
    total_price: MoneyStr
    order_items: list[OrderItem]
    history: list[StatusChange]
    created_at: datetime
    updated_at: datetime


def strict_order_create(raw: object) -> OrderCreate:
    """Re-validate a decoded body without Litestar's lax coercion.

    Litestar converts bodies with ``strict=False``, which would accept
    ``"quantity": "2"``; a basket with strings for numbers is a client bug we
    refuse (400) rather than guess at.
    """
    try:
        return msgspec.convert(raw, OrderCreate, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = field_of(message)
        raise InvalidInput(
            f"Invalid value for {field or 'the request body'}",
            errors=[{"field": field, "message": message}],
        ) from None
