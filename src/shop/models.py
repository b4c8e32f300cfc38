"""Imports every domain's tables so `metadata` knows the whole schema (Alembic, tests)."""

from shop import identity as identity_models
from shop import job_failures as job_failures_models
from shop.accounts import models as accounts_models
from shop.catalog import models as catalog_models
from shop.console import models as console_models
from shop.db import Base
from shop.orders import models as orders_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "catalog_models",
    "console_models",
    "identity_models",
    "job_failures_models",
    "metadata",
    "orders_models",
]
