"""Products: the list (the API's filters, search, ordering, paging), create/edit forms,
price and stock edited in the list row, archive and restore. All through `ProductService`,
so validation, row locks and the cache version bump are the API's."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from shop._compat.msgspec import field_of
from shop.catalog import schemas
from shop.catalog.models import Category, Product
from shop.catalog.services import ProductService
from shop.console import audit
from shop.console.pages import (
    Db,
    Pager,
    Query,
    StaffRequest,
    is_htmx,
    parse_bool,
    parse_int,
    render,
    see_other,
)
from shop.errors import ShopError
from shop.schemas import money
from shop.settings import Settings

Products = NamedDependency[ProductService]
FIELDS = ("name", "price", "stock", "category", "description")
TRACKED = ("name", "price", "stock", "category", "description", "archived")


def provide_products(db_session: Db, state: State) -> ProductService:
    settings: Settings = state.settings
    return ProductService(db_session, state.cache, settings.cache.products_ttl, state.engine)


def snapshot(product: Product, fields: tuple[str, ...] = TRACKED) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": product.name,
        "price": money(product.price),
        "stock": product.stock,
        "category": product.category,
        "description": product.description,
        "archived": product.archived,
    }
    return {field: values[field] for field in fields}


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def field_errors(exc: Exception) -> dict[str, str]:
    """``{field: message}`` from a msgspec validation error or a service's `InvalidInput`."""
    if isinstance(exc, msgspec.ValidationError):
        message = str(exc)
        return {field_of(message) or "form": message}
    if isinstance(exc, ShopError):
        errors = {str(e.get("field") or "form"): str(e["message"]) for e in exc.errors or []}
        return errors or {"form": exc.detail}
    raise exc


async def _audit_update(
    db_session: AsyncSession,
    actor_id: int,
    product_id: int,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """Record a product edit with the fields it changed (nothing when none did)."""
    old, new = changed(before, after)
    if new:
        await audit.record(
            db_session,
            actor_id=actor_id,
            action="product.update",
            object_type="product",
            object_id=product_id,
            before=old,
            after=new,
        )


def _form_values(form: Any, fields: tuple[str, ...]) -> dict[str, str]:
    """Text as typed (the service judges blank names, as for the API); numbers without blanks."""
    values = {field: str(form.get(field, "")) for field in fields if field in form}
    for field in ("price", "stock"):
        if field in values:
            values[field] = values[field].strip()
    return values


def _convert(values: dict[str, str], target: type[Any]) -> Any:
    data: dict[str, Any] = dict(values)
    for field in ("price", "stock"):
        if data.get(field) == "":
            data[field] = None  # "required" rather than "not a number"
    return msgspec.convert(data, target, strict=False)


class ProductPages(Controller):
    path = "/products"
    dependencies = {"products": Provide(provide_products, sync_to_thread=False)}

    @get("/")
    async def list_products(
        self,
        request: StaffRequest,
        products: Products,
        category: Query = None,
        price_min: Query = None,
        price_max: Query = None,
        search: Query = None,
        in_stock: Query = None,
        ordering: Query = None,
        archived: Query = None,
        stock_at_most: Query = None,
        offset: Query = None,
    ) -> Template:
        params = {
            "category": category or "",
            "price_min": price_min or "",
            "price_max": price_max or "",
            "search": search or "",
            "in_stock": in_stock or "",
            "ordering": ordering or "",
            "archived": archived or "",
            "stock_at_most": stock_at_most or "",
        }
        error = None
        try:
            query = msgspec.convert(
                {
                    "category": category or None,
                    "price_min": price_min or None,
                    "price_max": price_max or None,
                    "search": (search or "").strip()[:100] or None,
                    "in_stock": parse_bool(in_stock),
                    "ordering": ordering or "-created_at",
                    "limit": 20,
                    "offset": parse_int(offset, default=0, low=0, high=schemas.MAX_OFFSET),
                },
                schemas.ProductQuery,
                strict=False,
            )
        except msgspec.ValidationError as exc:
            error = str(exc)
            query = schemas.ProductQuery()
        low = parse_int(stock_at_most, default=-1, low=-1, high=schemas.MAX_STOCK)
        rows, total = await products.staff_page(
            query, archived=parse_bool(archived) is True, stock_at_most=None if low < 0 else low
        )
        return render(
            request,
            "products/_results.html" if is_htmx(request) else "products/list.html",
            products=rows,
            params=params,
            error=error,
            pager=Pager(total, query.limit, query.offset, params),
            categories=[c.value for c in Category],
            orderings=[o.value for o in schemas.Ordering],
        )

    @get("/new")
    async def new_product(self, request: StaffRequest) -> Template:
        return render(
            request,
            "products/form.html",
            product=None,
            values={"category": Category.ELECTRONICS.value},
            errors={},
            categories=[c.value for c in Category],
        )

    @post("/new", status_code=303)
    async def create_product(
        self, request: StaffRequest, products: Products, db_session: Db
    ) -> Redirect | Template:
        values = _form_values(await request.form(), FIELDS)
        try:
            product = await products.create(_convert(values, schemas.ProductCreate))
            await audit.record(
                db_session,
                actor_id=request.user.id,
                action="product.create",
                object_type="product",
                object_id=product.id,
                after=snapshot(product),
            )
        except (msgspec.ValidationError, ShopError) as exc:
            await db_session.rollback()
            return render(
                request,
                "products/form.html",
                status_code=400,
                product=None,
                values=values,
                errors=field_errors(exc),
                categories=[c.value for c in Category],
            )
        return see_other(f"/admin/products/{product.id}")

    @get("/{product_id:int}")
    async def edit_product(
        self, request: StaffRequest, products: Products, db_session: Db, product_id: FromPath[int]
    ) -> Template:
        product = await products.get_for_staff(product_id)
        return await self._form(request, db_session, product, snapshot(product), {})

    async def _form(
        self,
        request: StaffRequest,
        db_session: Db,
        product: Product,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        return render(
            request,
            "products/form.html",
            status_code=status_code,
            product=product,
            values=values,
            errors=errors,
            categories=[c.value for c in Category],
            history=await audit.entries_for(db_session, "product", product.id),
        )

    @post("/{product_id:int}", status_code=303)
    async def update_product(
        self, request: StaffRequest, products: Products, db_session: Db, product_id: FromPath[int]
    ) -> Redirect | Template:
        values = _form_values(await request.form(), FIELDS)
        current = await products.get_for_staff(product_id)
        before = snapshot(current)
        try:
            product = await products.replace(product_id, _convert(values, schemas.ProductCreate))
            await _audit_update(db_session, request.user.id, product_id, before, snapshot(product))
        except (msgspec.ValidationError, ShopError) as exc:
            await db_session.rollback()
            product = await products.get_for_staff(product_id)
            return await self._form(request, db_session, product, values, field_errors(exc), 400)
        return see_other(f"/admin/products/{product_id}")

    @post("/{product_id:int}/quick", status_code=303)
    async def quick_edit(
        self, request: StaffRequest, products: Products, db_session: Db, product_id: FromPath[int]
    ) -> Redirect | Template:
        """Price and stock from the list row; htmx gets the row back, a plain form the list."""
        form = await request.form()
        values = _form_values(form, ("price", "stock"))
        before = snapshot(await products.get_for_staff(product_id), ("price", "stock"))
        errors: dict[str, str] = {}
        try:
            product = await products.update(product_id, _convert(values, schemas.ProductUpdate))
            after = snapshot(product, ("price", "stock"))
            await _audit_update(db_session, request.user.id, product_id, before, after)
        except (msgspec.ValidationError, ShopError) as exc:
            await db_session.rollback()
            errors = field_errors(exc)
            product = await products.get_for_staff(product_id)
        if is_htmx(request):
            return render(
                request,
                "products/_row.html",
                status_code=400 if errors else 200,
                product=product,
                errors=errors,
                values=values if errors else {},
                saved=not errors,
            )
        if errors:
            return await self._form(
                request, db_session, product, {**snapshot(product), **values}, errors, 400
            )
        back = str(form.get("back", ""))
        return see_other(back if back.startswith("/admin/products") else "/admin/products/")

    @post("/{product_id:int}/archive", status_code=303)
    async def archive(
        self, request: StaffRequest, products: Products, db_session: Db, product_id: FromPath[int]
    ) -> Redirect:
        await products.archive(product_id)
        await audit.record(
            db_session,
            actor_id=request.user.id,
            action="product.archive",
            object_type="product",
            object_id=product_id,
            before={"archived": False},
            after={"archived": True},
        )
        return see_other(f"/admin/products/{product_id}")

    @post("/{product_id:int}/restore", status_code=303)
    async def restore(
        self, request: StaffRequest, products: Products, db_session: Db, product_id: FromPath[int]
    ) -> Redirect:
        before = (await products.get_for_staff(product_id)).archived
        await products.restore(product_id)
        if before:
            await audit.record(
                db_session,
                actor_id=request.user.id,
                action="product.restore",
                object_type="product",
                object_id=product_id,
                before={"archived": True},
                after={"archived": False},
            )
        return see_other(f"/admin/products/{product_id}")
