"""HTTP layer of the orders domain: checkout, reading orders, status changes, the staff view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.params import HeaderParameter, JSONBody, Parameter, SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import CurrentUser, requires_staff
from shop.cache import Cache
from shop.db import provide_read_session, session_provider
from shop.errors import InvalidInput, problem_responses
from shop.orders import schemas
from shop.orders.checkout import Checkout
from shop.orders.detail_cache import DETAIL, encode_order
from shop.orders.idempotency import order_request_hash, run_once
from shop.orders.lifecycle import Lifecycle
from shop.orders.models import OrderStatus
from shop.orders.reader import OrderReader
from shop.pagination import (
    PAGE_SIZE,
    Limit,
    ListPage,
    PageNumber,
    from_page,
    offset_parameter,
    refuse_repeated,
    window,
)
from shop.reads import CACHED_READ, kept, serve_hit
from shop.schemas import MAX_ID
from shop.settings import Settings

__all__ = ["AdminOrderController", "OrderController", "routes"]


# Order responses are sent as pre-encoded JSON bytes (the same bytes are stored
# for idempotent replays and cached for the detail view); handlers still
# declare `Response[Order]` so the OpenAPI schema shows the order's shape,
# hence the `type: ignore[arg-type]` on those returns.
def parse_instant(name: str, raw: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; a bare number is not a time (Litestar would take it as epoch)."""
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"Invalid value for {name}: expected an ISO 8601 date-time",
            errors=[
                {"field": name, "message": "expected an ISO 8601 date-time", "source": "query"}
            ],
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


OrderId = Annotated[int, Parameter(ge=1, le=MAX_ID, description="Order id")]
MAX_OFFSET = 2**31 - 1
Offset = Annotated[int, offset_parameter(MAX_OFFSET)]
# The app's one cache object (an ABC's subclass): skip Litestar's per-request validation of it.
CacheDep = NamedDependency[SkipValidation[Cache]]


def provide_reader(db_session: NamedDependency[AsyncSession], state: State) -> OrderReader:
    """One dependency for the read handlers: Litestar resolves several same-level
    dependencies in an anyio task group per request, a measurable cost on cached reads."""
    return OrderReader(db_session, state.cache, state.settings)


StatusFilter = Annotated[OrderStatus | None, Parameter(description="Only orders in this status")]


def _one_statement(request: Request[Any, Any, Any]) -> bool:
    """A checkout without an Idempotency-Key writes nothing but the checkout statement,
    which is complete on its own: its session runs in autocommit (`shop.db`)."""
    return "idempotency-key" not in request.headers


class OrderController(Controller):
    path = "/api/orders"
    tags = ["orders"]
    dependencies = {"reader": Provide(provide_reader, sync_to_thread=False)}

    @post(
        status_code=201,
        summary="Place an order",
        responses=problem_responses(
            400,
            401,
            404,
            409,
            422,
            s400="Invalid basket (empty, too many items, duplicate product, bad quantity, "
            "archived product, total below MIN_ORDER_AMOUNT)",
            s404="A product does not exist",
            s409="Not enough stock (``shortages`` lists each short product and what is available), "
            "or a request with the same Idempotency-Key is still in flight",
            s422="The Idempotency-Key was already used with a different body",
        ),
        dependencies={"db_session": Provide(session_provider(autocommit_when=_one_statement))},
    )
    async def create_order(
        self,
        request: Request[CurrentUser, Any, Any],
        data: JSONBody[schemas.OrderCreate],
        db_session: NamedDependency[AsyncSession],
        cache: CacheDep,
        settings: NamedDependency[Settings],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                description="Makes retries safe: the same key with the same body returns the first "
                "response for 24 h and creates nothing; with another body, 422.",
            ),
        ] = None,
    ) -> Response[schemas.Order]:
        """All or nothing: stock of every item is taken in one transaction, or none is."""
        data = schemas.strict_order_create(await request.json())
        checkout = Checkout(db_session, cache, settings)

        if idempotency_key is None:
            # The checkout statement is the whole transaction (`_one_statement`).
            order = await checkout.place(request.user, data)
            return Response(encode_order(order), status_code=201, media_type=MediaType.JSON)  # type: ignore[arg-type]

        async def place() -> bytes:
            return encode_order(await checkout.place(request.user, data))

        stored = await run_once(
            db_session,
            request.user.id,
            idempotency_key,
            order_request_hash(data),
            place,
            status=201,
        )
        headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
        return Response(
            stored.body,  # type: ignore[arg-type]
            status_code=stored.status,
            media_type=MediaType.JSON,
            headers=headers,
        )

    @get(
        summary="List my orders",
        responses=problem_responses(400, 401, 404),
        dependencies={"db_session": Provide(provide_read_session)},
    )
    async def list_orders(
        self,
        request: Request[CurrentUser, Any, Any],
        reader: NamedDependency[OrderReader],
        status: StatusFilter = None,
        page: PageNumber = None,
        limit: Limit = PAGE_SIZE,
        offset: Offset = 0,
    ) -> ListPage[schemas.Order]:
        """The caller's own orders, newest first: pages of 20 with `page`, or `limit`/`offset`."""
        given = refuse_repeated(request)
        at = window(page=page, limit=limit, offset=offset, given=given, max_offset=MAX_OFFSET)
        found = await reader.list_for_customer(request.user, status, at.limit, at.offset)
        return from_page(request, at, found)

    @get(
        "/{order_id:int}",
        summary="Get an order",
        responses=problem_responses(401, 404),
        before_request=serve_hit,
        opt={CACHED_READ: DETAIL},
        dependencies={"db_session": Provide(provide_read_session)},
    )
    async def get_order(
        self,
        request: Request[CurrentUser, Any, Any],
        reader: NamedDependency[OrderReader],
        order_id: OrderId,
    ) -> Response[schemas.Order]:
        """The owner or staff see the order; anyone else gets 404."""
        route = kept(request)
        body = await reader.detail(order_id, request.user, route[1] if route is not None else None)
        return Response(body, media_type=MediaType.JSON)  # type: ignore[arg-type]

    @patch(
        "/{order_id:int}",
        summary="Change an order's status",
        responses=problem_responses(
            400,
            401,
            403,
            404,
            409,
            s403="Customers may only cancel; ``allowed`` lists what the caller may do",
            s409="The lifecycle does not allow that move; ``allowed`` lists the caller's "
            "allowed next statuses",
        ),
    )
    async def update_order(
        self,
        request: Request[CurrentUser, Any, Any],
        data: JSONBody[schemas.OrderStatusUpdate],
        db_session: NamedDependency[AsyncSession],
        cache: CacheDep,
        settings: NamedDependency[Settings],
        order_id: OrderId,
    ) -> schemas.Order:
        """Move an order along its lifecycle (SPEC §2); every move is recorded in ``history``.

        pending → processing | shipped | cancelled; processing → shipped | cancelled;
        shipped → delivered. Customers may only cancel their own pending or processing
        order; cancelling restores the stock.
        """
        return await Lifecycle(db_session, cache, settings).move(
            request.user, order_id, data.status
        )


class AdminOrderController(Controller):
    path = "/api/admin/orders"
    tags = ["admin"]
    guards = [requires_staff]

    @get(
        summary="All orders (staff)",
        responses=problem_responses(400, 401, 403, 404),
        dependencies={"db_session": Provide(provide_read_session)},
    )
    async def list_all_orders(
        self,
        request: Request[CurrentUser, Any, Any],
        db_session: NamedDependency[AsyncSession],
        cache: CacheDep,
        settings: NamedDependency[Settings],
        status: StatusFilter = None,
        user_id: Annotated[int | None, Parameter(ge=1, le=MAX_ID, description="Owner id")] = None,
        created_from: Annotated[
            str | None,
            Parameter(
                description="Created at or after (ISO 8601; UTC when no offset)",
                max_length=64,
                schema_extra={"format": "date-time"},
            ),
        ] = None,
        created_to: Annotated[
            str | None,
            Parameter(
                description="Created at or before (ISO 8601; UTC when no offset)",
                max_length=64,
                schema_extra={"format": "date-time"},
            ),
        ] = None,
        page: PageNumber = None,
        limit: Limit = PAGE_SIZE,
        offset: Offset = 0,
    ) -> ListPage[schemas.Order]:
        """Every customer's orders, newest first: pages of 20 with `page`, or `limit`/`offset`."""
        given = refuse_repeated(request)
        at = window(page=page, limit=limit, offset=offset, given=given, max_offset=MAX_OFFSET)
        found = await OrderReader(db_session, cache, settings).list_all(
            status=status,
            user_id=user_id,
            created_from=parse_instant("created_from", created_from),
            created_to=parse_instant("created_to", created_to),
            limit=at.limit,
            offset=at.offset,
        )
        return from_page(request, at, found)


routes: list[Any] = [OrderController, AdminOrderController]
