"""What the shop relies on in advanced-alchemy beyond its public API, and why.

* `bound_repository`: an advanced-alchemy repository costs about 25 µs to build
  (``select(model)``, the primary-key inspection, the loader and error-message
  defaults, the session's dialect), 2.5 % of the checkout's samples when built per
  order. Everything it derives comes from the class and the dialect, and the shop
  talks to PostgreSQL only, so one instance per repository class is built, the
  first time, and each session gets a shallow copy of it with ``session`` set: the
  same object the constructor would have made, for about 1 µs. This relies on the
  constructor keeping no other per-session state: it also reads the session's
  dialect (every engine of the shop is PostgreSQL over asyncpg, so the first one
  stands for all) and ``info["cache_manager"]``, which the shop never sets.

tests/platform/test_compat_advanced_alchemy.py checks that a bound copy equals a
freshly built repository, attribute by attribute; pyproject.toml bounds
advanced-alchemy's version.
"""

from __future__ import annotations

from typing import Any, TypeVar

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["bound_repository"]

R = TypeVar("R", bound=SQLAlchemyAsyncRepository[Any])

_built: dict[type[Any], dict[str, Any]] = {}
"""Per repository class: the attributes its constructor set, but the session."""


def bound_repository(cls: type[R], session: AsyncSession) -> R:
    """An instance of ``cls`` working on ``session``, as ``cls(session=session)`` would be."""
    state = _built.get(cls)
    if state is None:
        state = {k: v for k, v in vars(cls(session=session)).items() if k != "session"}
        _built[cls] = state
    repository = cls.__new__(cls)
    repository.__dict__.update(state)
    repository.session = session
    return repository
