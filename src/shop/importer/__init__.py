"""Bringing data over from other systems into the shop.

`django` imports the Django app's database (``shop import django SOURCE_URL``);
see its docstring for the steps and docs/migrating-from-django.md for the
operator's view (cut-over, rules for odd data). Modules by concept:
`staging` (read-only source, COPY into temp tables), `rules` (odd data),
`apply` (the set-based upserts), `report` (counts, problems, progress).

The importer is an operator's tool, like the CLI: it writes the domains'
tables directly with set-based SQL (a million rows through the services
would take hours), and it keeps their invariants itself: the same checks
as the tables' constraints, one history entry per order, the caches
invalidated after commit.
"""
