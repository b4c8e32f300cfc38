"""Errors of the orders domain; each is a `shop.errors.ShopError`, answered as problem+json.

A product that does not exist is the catalogue's `ProductNotFound`, re-exported
here because the checkout raises it too.
"""

from __future__ import annotations

from shop.catalog.services import ProductNotFound
from shop.errors import Conflict, Forbidden, InvalidInput, NotFound, Unprocessable

__all__ = [
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "InsufficientStock",
    "OrderBelowMinimum",
    "OrderError",
    "OrderNotFound",
    "OrderTooLarge",
    "ProductNotFound",
    "ProductUnavailable",
    "StaffOnlyTransition",
    "TransitionNotAllowed",
]


class OrderError(Exception):
    """Marker base of the orders domain's errors (each also subclasses a `ShopError`)."""


class OrderNotFound(NotFound, OrderError):
    """No such order."""


class ProductUnavailable(InvalidInput, OrderError):
    """A product in the order is no longer sold."""


class InsufficientStock(Conflict, OrderError):
    """Not enough stock for some products; nothing was ordered."""


class OrderBelowMinimum(InvalidInput, OrderError):
    """The order total is below the minimum order amount."""


class OrderTooLarge(InvalidInput, OrderError):
    """The order is too large."""


class TransitionNotAllowed(Conflict, OrderError):
    """The order cannot move to that status."""


class StaffOnlyTransition(Forbidden, OrderError):
    """Only staff may move an order to that status."""


class IdempotencyKeyInFlight(Conflict, OrderError):
    """A request with this Idempotency-Key is still being processed; retry shortly."""


class IdempotencyKeyReused(Unprocessable, OrderError):
    """This Idempotency-Key was already used with a different request body."""
