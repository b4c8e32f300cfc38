"""HTTP layer of the catalog domain: /api/products.

Every endpoint needs an access token; writes are staff-only. List and detail
responses carry an ``ETag``; a request whose ``If-None-Match`` matches gets 304
without a body.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import requires_staff
from shop.cache import Cache
from shop.catalog import schemas
from shop.catalog.reader import DETAIL, LIST, CatalogueReader
from shop.catalog.services import ProductService, check_amount, check_text, invalid, to_schema
from shop.db import provide_read_session
from shop.errors import problem_responses
from shop.pagination import (
    PAGE_SIZE,
    Limit,
    ListPage,
    PageNumber,
    offset_parameter,
    refuse_repeated,
    window,
)
from shop.reads import CACHED_READ, kept, respond, serve_hit
from shop.settings import Settings

__all__ = ["ProductController", "routes"]

IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        required=False,
        description="An ETag from an earlier response: 304 without a body if unchanged.",
    ),
]
NOT_MODIFIED = {304: ResponseSpec(None, description="Not modified since the ETag given")}


def provide_products(db_session: NamedDependency[AsyncSession], state: State) -> ProductService:
    """One dependency per handler: Litestar resolves several same-level dependencies
    in an anyio task group per request, which cost a cached read about 15% (bench S1/S2)."""
    cache: Cache = state.cache
    settings: Settings = state.settings
    return ProductService(db_session, cache, settings.cache.products_ttl, state.engine)


def provide_catalogue(db_session: NamedDependency[AsyncSession], state: State) -> CatalogueReader:
    """The read handlers' one dependency (see `provide_products`)."""
    return CatalogueReader(db_session, state.cache, state.settings, state.engine)


class ProductController(Controller):
    path = "/api/products"
    tags = ["products"]
    dependencies = {
        "products": Provide(provide_products, sync_to_thread=False),
        "catalogue": Provide(provide_catalogue, sync_to_thread=False),
    }

    @get(
        "/",
        summary="List products",
        responses={**NOT_MODIFIED, **problem_responses(400, 401, 404)},
        before_request=serve_hit,
        opt={CACHED_READ: LIST},
        dependencies={"db_session": Provide(provide_read_session)},
    )
    async def list_products(
        self,
        request: Request[Any, Any, Any],
        catalogue: NamedDependency[CatalogueReader],
        if_none_match: IfNoneMatch = None,
        category: Annotated[
            schemas.Category | None, Parameter(description="Only this category")
        ] = None,
        price_min: Annotated[
            Decimal | None,
            Parameter(description="Price at least this", examples=[Example(value="10")]),
        ] = None,
        price_max: Annotated[
            Decimal | None,
            Parameter(description="Price at most this", examples=[Example(value="500")]),
        ] = None,
        search: Annotated[
            str | None,
            Parameter(max_length=100, description="Name contains this, case-insensitively"),
        ] = None,
        in_stock: Annotated[
            bool | None, Parameter(description="true: stock > 0; false: sold out")
        ] = None,
        ordering: Annotated[
            schemas.Ordering, Parameter(description="Sort key; ties are broken by id")
        ] = schemas.Ordering.CREATED_AT_DESC,
        page: PageNumber = None,
        limit: Limit = PAGE_SIZE,
        offset: Annotated[int, offset_parameter(schemas.MAX_OFFSET)] = 0,
    ) -> Response[ListPage[schemas.Product]]:
        """Live products matching every filter given; newest first unless `ordering` says else.

        Pages of 20 with `page`, or `limit`/`offset`; `count` is exact up to
        `LIST_EXACT_COUNT_MAX` matches, an estimate (with `count_is_estimate`) beyond.
        """
        errors = []
        if price_min is not None:
            errors += check_amount(price_min, "price_min", allow_zero=True)
        if price_max is not None:
            errors += check_amount(price_max, "price_max", allow_zero=True)
        if search is not None:
            errors += check_text(search, "search")
        if errors:
            raise invalid(errors)
        at = window(
            page=page,
            limit=limit,
            offset=offset,
            given=refuse_repeated(request),
            max_offset=schemas.MAX_OFFSET,
        )
        query = schemas.ProductQuery(
            category=category,
            price_min=price_min,
            price_max=price_max,
            search=search or None,
            in_stock=in_stock,
            ordering=ordering,
            limit=at.limit,
            offset=at.offset,
        )
        settings: Settings = request.app.state.settings
        route = kept(request)  # the hook's suffix (the raw query string) and lookup
        body = await catalogue.list_page(
            request,
            query,
            at,
            settings.list_exact_count_max,
            raw=route if route is not None else (LIST.suffix(request) or "", None),
        )
        return respond(LIST, body, if_none_match)

    @get(
        "/{product_id:int}",
        summary="Get a product",
        responses={**NOT_MODIFIED, **problem_responses(401, 404)},
        before_request=serve_hit,
        opt={CACHED_READ: DETAIL},
        dependencies={"db_session": Provide(provide_read_session)},
    )
    async def get_product(
        self,
        request: Request[Any, Any, Any],
        catalogue: NamedDependency[CatalogueReader],
        product_id: FromPath[int],
        if_none_match: IfNoneMatch = None,
    ) -> Response[schemas.Product]:
        """One live product; archived (deleted) products are 404."""
        route = kept(request)
        body = await catalogue.detail(product_id, route[1] if route is not None else None)
        return respond(DETAIL, body, if_none_match)

    @post(
        "/",
        summary="Create a product (staff)",
        guards=[requires_staff],
        responses=problem_responses(400, 401, 403),
    )
    async def create_product(
        self,
        products: NamedDependency[ProductService],
        data: JSONBody[schemas.ProductCreate],
    ) -> schemas.Product:
        product = await products.create(data)
        return to_schema(product)

    @patch(
        "/{product_id:int}",
        summary="Change some fields of a product (staff)",
        guards=[requires_staff],
        responses=problem_responses(400, 401, 403, 404),
    )
    async def update_product(
        self,
        products: NamedDependency[ProductService],
        product_id: FromPath[int],
        data: JSONBody[schemas.ProductUpdate],
    ) -> schemas.Product:
        product = await products.update(product_id, data)
        return to_schema(product)

    @put(
        "/{product_id:int}",
        summary="Replace every field of a product (staff)",
        guards=[requires_staff],
        responses=problem_responses(400, 401, 403, 404),
    )
    async def replace_product(
        self,
        products: NamedDependency[ProductService],
        product_id: FromPath[int],
        data: JSONBody[schemas.ProductCreate],
    ) -> schemas.Product:
        product = await products.replace(product_id, data)
        return to_schema(product)

    @delete(
        "/{product_id:int}",
        summary="Delete (archive) a product (staff)",
        guards=[requires_staff],
        responses=problem_responses(401, 403, 404),
    )
    async def delete_product(
        self, products: NamedDependency[ProductService], product_id: FromPath[int]
    ) -> None:
        """The product leaves the catalogue (404 from now on); orders keep its name and price."""
        await products.archive(product_id)


routes: list[Any] = [ProductController]
