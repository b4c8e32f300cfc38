"""Task runner. `nox -s dev` starts the shop; `nox -s tests` runs the full suite.

Sessions install the project into their own virtualenv (uv when available),
built from the Python that runs nox (3.11 or newer), so a fresh machine needs
nothing but Python and `pip install nox`.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite against real PostgreSQL, memcached, worker and Chromium."""
    session.install("-e", ".[test]")
    args = session.posargs or ["-q", "-p", "no:cacheprovider"]
    session.run("pytest", *args, env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.8")
    session.run("ruff", "check", "src", "tests", "db", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "db", "bench", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def dev(session: nox.Session) -> None:
    """Run the whole shop (API + worker) on an embedded PostgreSQL with an in-process cache."""
    session.install("-e", ".")
    session.run("shop", "dev", *session.posargs, env={"DEBUG": os.environ.get("DEBUG", "false")})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: the shop run the production way, loaded with wrk from another process."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "bench", *session.posargs)
