"""HTTP layer of invoices: ``GET /api/orders/{id}/invoice``, the PDF, for the order's owner or staff.

The invoice itself is made by the worker (`shop.orders.invoices`); this answers
404 with ``Retry-After`` until it exists.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.security import CurrentUser
from shop.errors import problem_responses
from shop.orders import invoices
from shop.orders.controllers import OrderId

__all__ = ["routes"]


@get(
    "/api/orders/{order_id:int}/invoice",
    tags=["orders"],
    summary="Download an order's PDF invoice",
    media_type="application/pdf",
    responses={
        200: ResponseSpec(bytes, description="The invoice PDF", media_type="application/pdf"),
        **problem_responses(
            401,
            404,
            s404=(
                "No such order for this user; its invoice has not been generated yet (with "
                "Retry-After); or the order was imported from the Django app, which kept no "
                "invoices, and none was requested for it (no Retry-After)"
            ),
        ),
    },
)
async def download_invoice(
    request: Request[CurrentUser, Any, Any],
    db_session: NamedDependency[AsyncSession],
    order_id: OrderId,
) -> Response[bytes]:
    """The invoice is made by a background job shortly after the order is placed; until then
    this answers 404 with a ``Retry-After`` header. An order imported from the Django app
    has no invoice unless an operator requested them (``shop import django --invoices``):
    a 404 saying so, without ``Retry-After``."""
    invoice = await invoices.invoice_for(db_session, order_id, request.user)
    return Response(
        content=invoice.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{invoices.invoice_filename(invoice)}"',
            "Cache-Control": "private, no-store",
        },
    )


routes: list[Any] = [download_invoice]
