"""`shop._compat.advanced_alchemy.bound_repository` makes what advanced-alchemy's constructor makes.

If this fails after an advanced-alchemy upgrade, the constructor now keeps state
that depends on the session (or the repositories' classes changed): read the
module's docstring, fix `bound_repository` or build the repositories per session,
and raise the version bound in pyproject.toml only once this passes again.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shop._compat.advanced_alchemy import bound_repository
from shop.orders.repositories import OrderRepository
from shop.orders.stock import CheckoutRepository, StockRepository


def _state(repository: Any) -> dict[str, Any]:
    """The instance's attributes; the statement compared as SQL (each build makes a new
    one), the dialect by kind (an engine's own instance; the shop has one kind)."""
    state = dict(vars(repository))
    state["statement"] = str(state["statement"])
    state["_dialect"] = (type(state["_dialect"]), state["_dialect"].name)
    return state


@pytest.mark.parametrize("cls", [CheckoutRepository, StockRepository, OrderRepository])
async def test_a_bound_repository_is_what_the_constructor_builds(
    session_maker: async_sessionmaker[AsyncSession], cls: type[Any]
) -> None:
    async with session_maker() as first, session_maker() as second:
        bound_repository(cls, first)  # the first use builds the one instance per class

        bound = bound_repository(cls, second)
        built = cls(session=second)

    assert type(bound) is cls
    assert bound.session is second
    assert _state(bound) == _state(built)


async def test_the_checkout_and_the_stock_use_bound_repositories_of_product(
    session_maker: async_sessionmaker[AsyncSession],
) -> None:
    async with session_maker() as session:
        checkout = CheckoutRepository.of(session)
        stock = StockRepository.of(session)

    assert checkout.session is session and stock.session is session
    assert checkout.model_type.__tablename__ == stock.model_type.__tablename__ == "products"
