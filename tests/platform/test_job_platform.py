"""The job platform knows no domain, and every task name the code defers is bound.

Deferring a name no blueprint bound would queue the job under Procrastinate's default
queue, where no worker of ours looks: `shop.jobs.defer` refuses it at run time, and this
test finds every name in the code before that can happen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from procrastinate.exceptions import TaskNotFound
from sqlalchemy.ext.asyncio import async_sessionmaker

from shop.jobs import defer, task_job
from shop.tasks import bind_tasks

SOURCES = Path(__file__).resolve().parents[2] / "src" / "shop"
BENCH = SOURCES.parents[1] / "bench"
DOMAINS = ("accounts", "catalog", "orders")
# The function and the position of its task-name argument.
DEFERRING = {"defer": 1, "task_job": 0}


def _modules() -> list[Path]:
    return sorted([*SOURCES.rglob("*.py"), *BENCH.rglob("*.py")])


def _deferred_names() -> dict[str, list[str]]:
    """Task name -> where it is deferred; every deferral must spell its name literally."""
    found: dict[str, list[str]] = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in DEFERRING or (path.name == "jobs.py" and name == "defer"):
                continue
            if name == "defer" and len(node.args) < 2:
                continue  # not ours (e.g. a library's defer())
            where = f"{path.relative_to(SOURCES.parents[1])}:{node.lineno}"
            argument = node.args[DEFERRING[name]]
            assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), (
                f"{where}: spell the task name as a string literal so it can be checked"
            )
            found.setdefault(argument.value, []).append(where)
    return found


def test_every_task_name_deferred_in_the_code_is_bound() -> None:
    registered = set(bind_tasks().tasks)
    deferred = _deferred_names()

    # The scan sees the deferrals we know of (checkout, invoices, webhooks, the bench).
    assert {"orders:generate_invoice", "orders:notify_shipped"} <= set(deferred)
    unknown = {name: where for name, where in deferred.items() if name not in registered}
    assert unknown == {}


def test_periodic_housekeeping_is_bound_under_the_platform_and_domain_namespaces() -> None:
    periodic = {p.task.name for p in bind_tasks().periodic_registry.periodic_tasks.values()}

    assert periodic == {
        "jobs:retry_stalled_jobs",
        "jobs:remove_finished_jobs",
        "orders:purge_idempotency_records",
        "orders:purge_webhook_attempts",
        "accounts:purge_expired_sessions",
    }


async def test_deferring_an_unknown_task_name_fails_instead_of_queueing_it(
    session_maker: async_sessionmaker,
) -> None:
    with pytest.raises(TaskNotFound):
        task_job("orders:no_such_task")
    async with session_maker() as session, session.begin():
        with pytest.raises(TaskNotFound):
            await defer(session, "orders:generate_invoices", order_id=1)


@pytest.mark.parametrize("module", ["jobs.py", "_compat/procrastinate.py", "tasks.py"])
def test_the_platform_imports_no_domain_and_nothing_imports_for_side_effects(
    module: str,
) -> None:
    imported = set()
    for node in ast.walk(ast.parse((SOURCES / module).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    domain_imports = {m for m in imported if m.split(".")[:2] in ([["shop", d] for d in DOMAINS])}
    if module == "tasks.py":  # the composition point: binding the domains is its job
        assert domain_imports
    else:
        assert domain_imports == set()


def test_no_module_imports_one_of_ours_only_for_what_importing_it_does() -> None:
    unused_imports = [
        f"{path.name}:{number}"
        for path in _modules()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "import" in line and "shop" in line and "noqa: F401" in line
    ]
    assert unused_imports == []
