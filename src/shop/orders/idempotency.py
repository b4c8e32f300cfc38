"""Safe retries with an ``Idempotency-Key`` header (Stripe semantics), scoped to the caller.

* The first request with a key runs normally; its response (status and body
  bytes) is stored with a SHA-256 of the canonical request body, in the same
  transaction as the order, and kept for `RETENTION_HOURS`.
* A retry with the same key and body gets the stored response and creates
  nothing; the same key with another body is refused (422).
* While the first request is in flight, it holds a transaction-scoped advisory
  lock on the key; a concurrent duplicate fails to take it (no waiting) and
  gets 409. The lock is released when the first transaction ends.
* A failed first request stores nothing: its record is rolled back with the
  rest of the transaction, so a retry runs afresh.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from shop.errors import InvalidInput
from shop.orders import schemas
from shop.orders.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from shop.orders.repositories import IdempotencyRepository

__all__ = ["RETENTION_HOURS", "StoredResponse", "order_request_hash", "run_once"]

RETENTION_HOURS = 24
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    replayed: bool


def order_request_hash(data: schemas.OrderCreate) -> str:
    """Hash of the basket as parsed: whitespace, key order and line order do not matter."""
    lines = sorted((line.product_id, line.quantity) for line in data.items)
    return hashlib.sha256(msgspec.json.encode(lines)).hexdigest()


async def run_once(
    session: AsyncSession,
    user_id: int,
    key: str,
    request_hash: str,
    action: Callable[[], Awaitable[bytes]],
    status: int,
) -> StoredResponse:
    """Run ``action`` once per (user, key); replay its stored response afterwards."""
    if not _KEY.match(key):
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            errors=[{"field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters"}],
        )
    records = IdempotencyRepository(session)
    if not await records.try_claim(user_id, key):
        raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})
    if not await records.start(user_id, key, request_hash, RETENTION_HOURS):
        record = await records.get(user_id, key)
        if record is None or record.response_status is None or record.response_body is None:
            # Cannot happen while we hold the key's lock; answer as if in flight.
            raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})
        if record.request_hash != request_hash:
            raise IdempotencyKeyReused()
        return StoredResponse(record.response_status, record.response_body, replayed=True)
    body = await action()
    await records.finish(user_id, key, status, body)
    return StoredResponse(status, body, replayed=False)
