"""Real `shop run` / `shop worker` processes for the hardening tests.

Production runs the API and the workers as separate processes, each with its
own pools; signals, multiprocess metrics and cross-instance coherence can only
be shown with real processes, so these tests start them with the CLI exactly
as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import memcached_url
from tests.support.servers import free_port, wait_for_port


def shop_env(postgres_url: str, memcached: str | None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SECRET_KEY": "test-secret-key-that-is-long-enough",
        "DATABASE_URL": postgres_url,
        "ALLOWED_HOSTS": "*",
        "JSON_LOGS": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if memcached:
        env["MEMCACHED_URL"] = memcached
    env.update(extra)
    return env


@dataclass
class ShopProcess:
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def terminate(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Processes:
    """Starts shop processes and stops whatever is still running at the end of the test."""

    directory: Path
    started: list[ShopProcess] = field(default_factory=list)

    def _spawn(self, args: list[str], env: dict[str, str], name: str) -> ShopProcess:
        log = self.directory / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "shop.cli", *args], env=env, stdout=out, stderr=out
            )
        handle = ShopProcess(process, log)
        self.started.append(handle)
        return handle

    def api(self, env: dict[str, str], *, workers: int = 1) -> ShopProcess:
        port = free_port()
        handle = self._spawn(["run", "--port", str(port), "--workers", str(workers)], env, "api")
        try:
            wait_for_port("127.0.0.1", port, timeout=60)
        except TimeoutError:
            pytest.fail(f"shop run did not start:\n{handle.output()}")
        handle.url = f"http://127.0.0.1:{port}"
        return handle

    def worker(self, env: dict[str, str], *, concurrency: int = 2) -> ShopProcess:
        return self._spawn(["worker", "--concurrency", str(concurrency)], env, "worker")

    def stop_all(self) -> None:
        for handle in self.started:
            with contextlib.suppress(Exception):
                handle.terminate(timeout=30)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def env(postgres_url: str, memcached: object) -> dict[str, str]:
    return shop_env(postgres_url, memcached_url(memcached))  # type: ignore[arg-type]
