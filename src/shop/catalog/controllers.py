"""HTTP layer of the catalog domain: /api/products.

Every endpoint needs an access token; writes are staff-only. List and detail
responses carry an ``ETag``; a request whose ``If-None-Match`` matches gets 304
without a body.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import requires_staff
from shop.cache import PRODUCTS, Cache
from shop.catalog import schemas, stock
from shop.catalog.caching import Encoded, etag_matches
from shop.catalog.reader import (
    CatalogueReader,
    detail_lookup,
    serve_cached_detail,
    serve_cached_list,
)
from shop.catalog.services import ProductService, check_amount, check_text, invalid, to_schema
from shop.db import provide_read_session
from shop.errors import problem_responses
from shop.pagination import (
    PAGE_SIZE,
    Limit,
    ListPage,
    PageNumber,
    offset_parameter,
    page_number,
    refuse_repeated,
    window,
)
from shop.prefetch import PREFETCH, lookup_of, prefetched
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
CACHE_CONTROL = "private, no-cache"
"""Clients may keep a copy but must revalidate it (cheap: a 304); products need a token."""


def provide_products(db_session: NamedDependency[AsyncSession], state: State) -> ProductService:
    """One dependency per handler: Litestar resolves several same-level dependencies
    in an anyio task group per request, which cost a cached read about 15% (bench S1/S2)."""
    cache: Cache = state.cache
    settings: Settings = state.settings
    return ProductService(db_session, cache, settings.cache.products_ttl, state.engine)


def provide_catalogue(db_session: NamedDependency[AsyncSession], state: State) -> CatalogueReader:
    """The read handlers' one dependency (see `provide_products`)."""
    settings: Settings = state.settings
    return CatalogueReader(db_session, state.cache, settings.cache.products_ttl, state.engine)


def _conditional(encoded: Encoded, if_none_match: str | None) -> Response[Any]:
    headers = {"ETag": encoded.etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(if_none_match, encoded.etag):
        return Response(content=b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(
        content=encoded.body,
        status_code=HTTP_200_OK,
        media_type="application/json",
        headers=headers,
    )


def _list_suffix(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    # The pairs, as sent, in sorted order: the same query in another order
    # shares the entry, without decoding and re-encoding every pair. A
    # parameter given twice is refused before this key is used (the hook), so
    # the key means exactly the query the handler validates.
    pairs = connection.scope["query_string"].decode("latin-1").split("&")
    return "raw:" + "&".join(sorted(pairs))


def _list_lookup(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str, str, list[str]]:
    # With the page: the stock entries of the products this query showed last time.
    suffix = _list_suffix(connection)
    return PRODUCTS, suffix, stock.expected(suffix)


def _detail_lookup(
    connection: ASGIConnection[Any, Any, Any, Any],
) -> tuple[str, str, list[str]] | None:
    product_id = connection.path_params.get("product_id")
    if not isinstance(product_id, int) or not 0 < product_id <= 2**63 - 1:
        return None
    return detail_lookup(product_id)


async def serve_list_hit(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Answer a cached list before Litestar parses and validates the parameters.

    Entries are also stored under the raw query string (its pairs sorted) once
    the handler has validated that exact query and built its response, so a
    hit here can only be a query that was valid before. The key carries the
    catalogue version like every other entry, so a catalogue change bumps it
    too. The page's stock figures come from their own entries, read with the
    page when this process has seen the query before (`shop.catalog.stock`);
    ``next``/``previous`` are built from this request. A miss falls through to
    the handler, which stores under both keys. The lookup itself was read with
    the caller's snapshot (`shop.prefetch`).
    """
    params = refuse_repeated(request)
    lookup = await prefetched(request, _list_lookup)
    if lookup is None:
        return None
    state = request.app.state
    settings: Settings = state.settings
    encoded = await serve_cached_list(
        state.cache,
        state.engine,
        settings.cache.products_ttl,
        request,
        page_number(params),
        _list_suffix(request),
        lookup,
    )
    if encoded is None:
        return None
    return _conditional(encoded, request.headers.get("if-none-match"))


async def serve_detail_hit(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Answer a cached product detail before Litestar resolves the handler's arguments
    and dependencies (as `serve_list_hit` does); a miss falls through to the handler.
    The lookup was read with the caller's snapshot (`shop.prefetch`)."""
    lookup = await prefetched(request, _detail_lookup)
    if lookup is None:
        return None
    state = request.app.state
    settings: Settings = state.settings
    encoded = await serve_cached_detail(
        state.cache,
        state.engine,
        settings.cache.products_ttl,
        request.path_params["product_id"],
        lookup,
    )
    if encoded is None:
        return None
    return _conditional(encoded, request.headers.get("if-none-match"))


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
        before_request=serve_list_hit,
        opt={PREFETCH: _list_lookup},
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
        encoded = await catalogue.list_page(
            request,
            query,
            at,
            settings.list_exact_count_max,
            # the hook's lookup under the raw query string
            raw=(_list_suffix(request), lookup_of(request)),
        )
        return _conditional(encoded, if_none_match)

    @get(
        "/{product_id:int}",
        summary="Get a product",
        responses={**NOT_MODIFIED, **problem_responses(401, 404)},
        before_request=serve_detail_hit,
        opt={PREFETCH: _detail_lookup},
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
        encoded = await catalogue.detail_encoded(product_id, lookup_of(request))
        return _conditional(encoded, if_none_match)

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
