"""Names vulture (``nox -s lint``) reports as unused that are used, each with who uses it.

Vulture reads only Python; these are used by a library calling them back, by a template,
by the wire format, or by the database. Add a name here only with the reason; anything
vulture reports that is not listed is dead: delete it. Configuration: pyproject.toml
``[tool.vulture]`` (Litestar handlers, click commands and Procrastinate tasks are found by
their decorators there).
"""

from typing import Any

_: Any = None

# Overrides of library methods: the library calls them.
_._validate_key  # aiomcache.Client (shop/_compat/aiomcache.py)
_._incr_decr  # aiomcache.Client
_._async_pool  # procrastinate's PsycopgConnector attribute, reset on purpose (_compat)
_.check_needs_rehash  # pwdlib's hasher interface (accounts/django_hashes.py)
_.authenticate_request  # Litestar's AbstractAuthenticationMiddleware (accounts/security.py)
_.get_retry_decision  # procrastinate's BaseRetryStrategy (orders/tasks.py)
_.collect  # prometheus_client's collector interface (ops/metrics.py)
_.inherit_cache  # SQLAlchemy's compiled-cache flag on a custom construct (pagination.py)
_._compile_explain  # registered with SQLAlchemy's @compiles (pagination.py)
_.proxy  # SQLAlchemy's "checkout" event signature (db.py)
_.frame  # signal.signal's handler signature (dev.py)

# Options fontTools and reportlab read (orders/invoice_pdf.py).
_.useA85
_.hinting
_.layout_features
_.name_IDs
_.name_languages
_.notdef_outline
_.glyph_names
_.drop_tables

# Cache counters: exported by name to Prometheus (ops/metrics.py reads them with getattr).
_.hits
_.misses
_.sets
_.bumps
_.calls
_.skipped

# Read by templates (console/templates/base/pager.html).
_.first_shown
_.last_shown

# Wire and table fields: msgspec encodes them, SQLAlchemy maps them.
_.iat  # JWT claim (accounts/security.py)
_.order_items  # orders/schemas.py Order
_.requested  # errors.py Shortage
_.available  # errors.py Shortage
_.retry_after  # errors.py Problem
_.docs  # ops/docs.py ApiIndex
_.redoc  # ops/docs.py ApiIndex
_.health  # ops/docs.py ApiIndex
_.imported_password_hash  # accounts/models.py column (the Django import writes it in SQL)
_.singleton  # identity.py column (one row)
_.InvoiceCounter  # orders/models.py table (invoice_repository.py updates it in SQL; Alembic checks it)
_.year  # its columns
_.last_number
_.CLOTHING  # catalog/models.py Category members: values clients send
_.BOOKS
_.HOME
_.SPORTS
_.TOYS

# Public helper the test suite and scripts/bench_orders.py migrate with.
_.upgrade_async
