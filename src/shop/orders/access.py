"""Who may see an order: its owner and staff. Everyone else learns nothing.

One rule for every path that reads or changes an order (the detail, its cache
entry, status changes, the invoice download): a caller who may not see an
order gets the same 404 as for an order that does not exist, so order ids
cannot be probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shop.orders.errors import OrderNotFound

if TYPE_CHECKING:
    from shop.accounts.security import CurrentUser

__all__ = ["require_owner_or_staff"]


def require_owner_or_staff(owner_id: int, user: CurrentUser) -> None:
    """Raise `OrderNotFound` unless ``user`` owns the order (``owner_id``) or is staff."""
    if owner_id != user.id and not user.is_staff:
        raise OrderNotFound()
