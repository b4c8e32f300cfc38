"""HTTP layer of invoices and webhook deliveries (orders domain, background-jobs issue)."""

from __future__ import annotations

from typing import Any

routes: list[Any] = []
