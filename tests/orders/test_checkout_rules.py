"""The checkout's acceptance rules, written twice, agree: the statement's verdict and `refusal`.

The checkout statement decides in SQL whether a basket can be served (its
``verdict``); when it refuses, `shop.orders.checkout.refusal` explains why from
the rows it locked, in Python. Every rule, and each boundary on either side of
it, runs here through both: the statement's verdict (in a transaction rolled
back afterwards) must refuse exactly the baskets `refusal` finds a fault with,
and the client must get that explanation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shop.orders.checkout import refusal
from shop.orders.stock import BasketLine, CheckoutRepository, JobToDefer, PlacedOrder
from shop.schemas import MAX_ID, MAX_MONEY
from shop.settings import Settings
from tests.orders.helpers import count, place_order, stock_of
from tests.support.factories import make_product, make_user

UNKNOWN = MAX_ID
"""A product id no row has."""

_JOB = JobToDefer(
    queue_name="default",
    task_name="orders:generate_invoice",
    priority=0,
    lock=None,
    queueing_lock=None,
    args={},
    scheduled_at=None,
)


@dataclass(frozen=True)
class Line:
    """One basket line: a product made with ``price``/``stock``/``archived``, or UNKNOWN."""

    quantity: int
    price: str = "10.00"
    stock: int = 5
    archived: bool = False
    unknown: bool = False


CASES: list[tuple[str, list[Line], int]] = [
    # accepted, on every boundary
    ("served", [Line(1), Line(2)], 201),
    ("the whole stock", [Line(5, stock=5)], 201),
    ("exactly the minimum total", [Line(2, price="0.50")], 201),
    ("exactly the largest total", [Line(1, price=str(MAX_MONEY))], 201),
    # one rule broken
    ("unknown product", [Line(1), Line(1, unknown=True)], 404),
    ("archived product", [Line(1, archived=True), Line(1)], 400),
    ("one unit short", [Line(1), Line(6, stock=5)], 409),
    ("sold out", [Line(1, stock=0)], 409),
    ("a cent below the minimum", [Line(1, price="0.99")], 400),
    ("a cent above the largest total", [Line(1, price=str(MAX_MONEY)), Line(1, price="0.01")], 400),
    ("above the largest total through the quantity", [Line(2, price="5000000000.00")], 400),
    # several broken: the first rule in the documented order names the refusal
    ("unknown and archived", [Line(1, archived=True), Line(1, unknown=True)], 404),
    ("unknown and short", [Line(9, stock=1), Line(1, unknown=True)], 404),
    ("archived and short", [Line(9, stock=1, archived=True)], 400),
    ("short and below the minimum", [Line(2, price="0.10", stock=1)], 409),
    ("short and above the largest total", [Line(2, price=str(MAX_MONEY), stock=1)], 409),
]


def _as_locked(placed: PlacedOrder) -> list[BasketLine]:
    """The lines as the statement locked them: a placed order reports the stock it left."""
    if placed.order is None:
        return placed.lines
    return [
        replace(line, product=replace(line.product, stock=line.product.stock + line.quantity))
        if line.product is not None
        else line
        for line in placed.lines
    ]


@pytest.mark.parametrize(("lines", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_the_statement_and_its_explanation_agree(
    client: httpx.AsyncClient,
    settings: Settings,
    db: AsyncSession,
    session_maker: async_sessionmaker[AsyncSession],
    lines: list[Line],
    status: int,
) -> None:
    user = await make_user(db)
    basket: list[tuple[int, int]] = []
    for line in lines:
        if line.unknown:
            basket.append((UNKNOWN, line.quantity))
            continue
        product = await make_product(
            db, price=Decimal(line.price), stock=line.stock, archived=line.archived
        )
        basket.append((product.id, line.quantity))
    known = [product_id for product_id, _ in basket if product_id != UNKNOWN]
    stocks = [await stock_of(db, product_id) for product_id in known]

    # The statement's verdict, and `refusal`'s reading of the rows it locked.
    async with session_maker() as session:
        placed = await CheckoutRepository.of(session).place(
            user.id, basket, min_total=settings.min_order_amount, max_total=MAX_MONEY, job=_JOB
        )
        await session.rollback()
    explained = refusal(_as_locked(placed), settings.min_order_amount)

    assert (placed.order is not None) == (status == 201)
    assert (explained is None) == (placed.order is not None)

    # What the client gets: the same verdict, and that explanation.
    response = await place_order(client, settings, user, *basket)
    assert response.status_code == status, response.text
    if explained is None:
        assert await count(db, "orders", "user_id = :u", u=user.id) == 1
        return
    assert response.status_code == explained.status_code
    problem: dict[str, Any] = response.json()
    assert problem["detail"] == explained.detail
    assert problem.get("errors") == explained.errors
    for member, value in explained.extra.items():
        assert problem[member] == value
    assert [await stock_of(db, product_id) for product_id in known] == stocks
    assert await count(db, "orders", "user_id = :u", u=user.id) == 0
