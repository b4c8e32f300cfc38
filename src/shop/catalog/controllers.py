"""HTTP layer of the catalog domain."""

from __future__ import annotations

from typing import Any

routes: list[Any] = []
