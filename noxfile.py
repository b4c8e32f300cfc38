"""Task runner. `nox -s dev` starts the shop; `nox -s tests` runs the full suite.

Sessions install the project into their own virtualenv, built from the Python
that runs nox (3.11 or newer), so a fresh machine needs nothing but Python and
`pip install nox`. Dependencies come from `uv.lock` (`uv sync --locked`), the
same pins the container image installs; a session brings its own uv when nox
has none. After changing dependencies in pyproject.toml, refresh the lock with
`uv lock` (or `nox -s lock`) and commit uv.lock: a stale lock fails the sessions.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


STALE_LOCK = (
    "uv.lock does not match pyproject.toml (a dependency was added or changed): "
    "run `uv lock` (or `nox -s lock`) and commit uv.lock"
)


def _uv(session: nox.Session) -> None:
    """Make `uv` runnable in the session: nox's own when it uses uv, else installed by pip."""
    if session.venv_backend != "uv":
        session.install("uv")


def sync(session: nox.Session, *extras: str, compile_bytecode: bool = False) -> None:
    """Install exactly the locked dependencies (and the project, editable) into the session."""
    _uv(session)
    location = session.virtualenv.location  # type: ignore[union-attr]
    env = {"UV_PROJECT_ENVIRONMENT": location, "UV_PYTHON": f"{location}/bin/python"}
    try:
        session.run_install("uv", "lock", "--check", "--quiet", env=env)
    except nox.command.CommandFailed:
        session.error(STALE_LOCK)
    options = [f"--extra={extra}" for extra in extras]
    if compile_bytecode:
        options.append("--compile-bytecode")
    session.run_install("uv", "sync", "--locked", *options, env=env)


def locked_version(name: str) -> str:
    packages = tomllib.loads(Path("uv.lock").read_text())["package"]
    return str(next(p["version"] for p in packages if p["name"] == name))


@nox.session
def lock(session: nox.Session) -> None:
    """Refresh uv.lock after a change to pyproject.toml's dependencies (`-- --upgrade` too)."""
    _uv(session)
    session.run("uv", "lock", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite against real PostgreSQL, memcached, worker and Chromium."""
    sync(session, "test")
    args = session.posargs or ["-q", "-p", "no:cacheprovider"]
    session.run("pytest", *args, env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (style, bugs, formatting) and vulture (dead code; configured in pyproject.toml)."""
    session.install(f"ruff=={locked_version('ruff')}", f"vulture=={locked_version('vulture')}")
    session.run("ruff", "check", "src", "tests", "db", "bench", "scripts", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "db", "bench", "scripts", "noxfile.py")
    session.run("vulture")


@nox.session
def typecheck(session: nox.Session) -> None:
    sync(session, "dev")
    session.run("mypy")


@nox.session
def dev(session: nox.Session) -> None:
    """Run the whole shop (API + worker) on an embedded PostgreSQL with an in-process cache."""
    sync(session)
    session.run("shop", "dev", *session.posargs, env={"DEBUG": os.environ.get("DEBUG", "false")})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: the shop run the production way, loaded with wrk from another process."""
    sync(session, "test")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing of the security and money rules (slow, not in CI): scripts/mutation.py.

    Needs what the tests need (PostgreSQL via DATABASE_URL, memcached); `-- lifecycle
    checkout` runs some targets, `-- --report` prints the last scores.
    """
    # Compiled once here: each mutant starts a new pytest, which then imports in ~1/3 the time.
    sync(session, "test", "mutation", compile_bytecode=True)
    session.run("python", "scripts/mutation.py", *session.posargs)
