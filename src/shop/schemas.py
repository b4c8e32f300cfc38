"""Types shared by every domain: money on the wire, a page of a list, the database's limits.

Money goes out as a decimal string with exactly two places (``"199.99"``),
never a float: Litestar's default encoder would turn a `Decimal` into a float,
so response structs carry `MoneyStr` and build it with `money()`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Generic, TypeVar

import msgspec

__all__ = ["CENT", "MAX_ID", "MAX_MONEY", "MoneyStr", "Page", "money"]

CENT = Decimal("0.01")

MAX_ID = 2**63 - 1
"""The largest BIGINT, so the largest id of any row: a larger id names nothing (and must not
reach asyncpg, which refuses it)."""

MAX_MONEY = Decimal("9999999999.99")
"""The largest amount a NUMERIC(12, 2) column (prices, totals) holds."""

MoneyStr = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^-?\d+\.\d{2}$",
        description="Decimal amount as a string with two places",
        examples=["199.99"],
    ),
]

T = TypeVar("T")


def money(amount: Decimal) -> str:
    return str(amount.quantize(CENT, rounding=ROUND_HALF_UP))


class Page(msgspec.Struct, Generic[T]):
    """A page of a list as services return it: ``items``, the ``total`` matching, and the
    ``limit``/``offset`` used. The wire envelope (DRF's) is `shop.pagination.ListPage`."""

    items: list[T]
    total: int
    limit: int
    offset: int
    total_is_estimate: bool = False
    """``total`` is PostgreSQL's estimate (more than ``LIST_EXACT_COUNT_MAX`` match)."""
    has_next: bool = False
    """Another page follows."""
