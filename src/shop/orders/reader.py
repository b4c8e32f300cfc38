"""Reading orders as clients see them: the detail (cached per order) and paginated lists,
the staff console's search and the dashboard's figures.

Placing an order lives in `checkout.py`, status transitions in `lifecycle.py`,
safe retries in `idempotency.py`, the cached detail's declaration in `detail_cache.py`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shop.accounts.security import CurrentUser
from shop.cache import Cache, Lookup
from shop.orders import schemas
from shop.orders.detail_cache import DETAIL, Entry, pack_entry, unpack_entry
from shop.orders.errors import OrderNotFound
from shop.orders.models import Order, OrderStatus, OrderStatusChange
from shop.orders.repositories import AnyRow, OrderRepository
from shop.reads import Built, read_through
from shop.schemas import MAX_ID, Page, money
from shop.settings import Settings

__all__ = ["OrderReader", "status_change"]


def _as_utc(moment: datetime | None) -> datetime | None:
    """Query strings may carry naive date-times; they mean UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


class OrderReader:
    """Orders as clients see them: the detail (cached per order) and paginated lists."""

    def __init__(self, session: AsyncSession, cache: Cache, settings: Settings) -> None:
        self.session = session
        self.cache = cache
        self.settings = settings

    @property
    def engine(self) -> AsyncEngine:
        """For stock figures read outside the request's transaction (`shop.catalog.stock`)."""
        bind = self.session.bind
        engine = bind.engine if isinstance(bind, AsyncConnection) else bind
        assert isinstance(engine, AsyncEngine)
        return engine

    @functools.cached_property
    def orders(self) -> OrderRepository:
        # Built on first use: a cache hit never needs it.
        return OrderRepository(session=self.session)

    async def detail(self, order_id: int, user: CurrentUser, found: Lookup | None = None) -> bytes:
        """The encoded order, for its owner or staff; anyone else learns nothing (404).

        Read through the cached-read layer (`detail_cache.DETAIL`): the entry
        carries the owner's id, checked before any cached byte is served; a miss
        is read once per order and process and stored under the version read
        before the database. ``found``: the route's lookup, if already made.
        """
        if not 1 <= order_id <= MAX_ID:
            raise OrderNotFound()
        suffix = str(order_id)
        if found is None:
            found = await self.cache.lookup(DETAIL.namespace, suffix, DETAIL.more(suffix))

        async def build() -> Built[Entry]:
            orders = await self.load([order_id])
            if not orders:
                raise OrderNotFound()
            raw = pack_entry(orders[0])
            entry = unpack_entry(raw)
            if entry is None:  # cannot happen: we packed it
                raise RuntimeError("undecodable order entry")
            # read in this very request: its stock figures are fresh as they are
            return Built(raw, entry, {})

        body = await read_through(
            DETAIL,
            self.cache,
            self.engine,
            self.settings,
            found,
            build,
            context=None,
            user=user,
            suffix=suffix,
        )
        assert isinstance(body, bytes)  # an order always renders, as bytes
        return body

    async def list_for_customer(
        self, user: CurrentUser, status: OrderStatus | None, limit: int, offset: int
    ) -> Page[schemas.Order]:
        return await self._page(user_id=user.id, status=status, limit=limit, offset=offset)

    async def list_all(
        self,
        *,
        status: OrderStatus | None,
        user_id: int | None,
        created_from: datetime | None,
        created_to: datetime | None,
        limit: int,
        offset: int,
    ) -> Page[schemas.Order]:
        return await self._page(
            user_id=user_id,
            status=status,
            created_from=_as_utc(created_from),
            created_to=_as_utc(created_to),
            limit=limit,
            offset=offset,
        )

    async def _page(
        self,
        *,
        user_id: int | None,
        status: OrderStatus | None,
        limit: int,
        offset: int,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> Page[schemas.Order]:
        orders, count, has_next = await self.orders.page(
            user_id=user_id,
            status=status.value if status else None,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            offset=offset,
            count_max=self.settings.list_exact_count_max,
        )
        items = await self._assemble(orders)
        return Page(
            items=items,
            total=count.value,
            limit=limit,
            offset=offset,
            total_is_estimate=count.estimate,
            has_next=has_next,
        )

    async def staff_search(
        self,
        *,
        search: str | None = None,
        status: OrderStatus | None = None,
        user_id: int | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[tuple[Order, str, str]], int]:
        """The staff console's order list: ``(order, customer e-mail, username)`` rows."""
        return await self.orders.staff_search(
            search=search.strip() if search else None,
            status=status.value if status else None,
            user_id=user_id,
            created_from=_as_utc(created_from),
            created_to=_as_utc(created_to),
            limit=limit,
            offset=offset,
        )

    async def dashboard_figures(
        self, today: datetime, week: datetime
    ) -> tuple[dict[str, int], Decimal, Decimal]:
        """Orders since ``today`` by status; revenue since ``today`` and since ``week``."""
        return await self.orders.figures_since(today, week)

    async def load(self, order_ids: Sequence[int]) -> list[schemas.Order]:
        """Full orders (items, history) in the order of ``order_ids``; missing ids are skipped."""
        by_id = {o.id: o for o in await self.orders.by_ids(order_ids)}
        return await self._assemble([by_id[i] for i in order_ids if i in by_id])

    async def _assemble(self, orders: Sequence[Order]) -> list[schemas.Order]:
        if not orders:
            return []
        ids = [o.id for o in orders]
        items: dict[int, list[schemas.OrderItem]] = defaultdict(list)
        for item in await self.orders.items_with_products(ids):
            price = money(item.price_at_purchase)
            items[item.order_id].append(
                schemas.OrderItem(
                    id=item.id,
                    product=schemas.OrderedProduct(
                        id=item.product_id,
                        name=item.product_name,
                        description=item.product_description,
                        price=price,
                        stock=item.stock,
                        category=item.product_category,
                        created_at=item.created_at,
                        updated_at=item.updated_at,
                    ),
                    quantity=item.quantity,
                    price_at_purchase=price,
                    total_price=money(item.price_at_purchase * item.quantity),
                )
            )
        history: dict[int, list[schemas.StatusChange]] = defaultdict(list)
        for change in await self.orders.history(ids):
            history[change.order_id].append(status_change(change))
        return [
            schemas.Order(
                id=o.id,
                user=o.user_id,
                status=OrderStatus(o.status),
                total_price=money(o.total_price),
                order_items=items[o.id],
                history=history[o.id],
                created_at=o.created_at,
                updated_at=o.updated_at,
            )
            for o in orders
        ]


def status_change(change: OrderStatusChange | AnyRow) -> schemas.StatusChange:
    """A status change as clients see it, from its model or a row of its columns."""
    return schemas.StatusChange(
        from_status=OrderStatus(change.from_status) if change.from_status else None,
        to_status=OrderStatus(change.to_status),
        actor=change.actor_id,
        at=change.at,
    )
