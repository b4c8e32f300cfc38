"""The `shop` command as an operator runs it: real subprocesses, real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from shop.accounts.models import User
from tests.support.servers import free_port


def shop(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def cli_env(postgres_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": postgres_url,
            "SECRET_KEY": "cli-test-secret-key-long-enough-for-hs256",
            "JSON_LOGS": "false",
        }
    )
    env.pop("MEMCACHED_URL", None)
    return env


async def test_database_upgrade_is_idempotent(cli_env):
    first = shop("database", "upgrade", env=cli_env)
    second = shop("database", "upgrade", env=cli_env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout


async def test_users_create_makes_a_staff_user_non_interactively(cli_env, db):
    result = shop(
        "users", "create", "--email", "Boss@Example.com", "--username", "boss",
        "--password", "Quite-Long-Passphrase-7", "--staff", env=cli_env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    user = (await db.execute(select(User).where(User.username == "boss"))).scalar_one()
    assert user.is_staff is True
    assert user.email == "boss@example.com"
    assert user.password_hash.startswith("$argon2id$")


async def test_users_create_refuses_a_taken_email(cli_env):
    args = (
        "users",
        "create",
        "--email",
        "dup@example.com",
        "--password",
        "Quite-Long-Passphrase-7",
    )
    first = shop(*args, "--username", "first", env=cli_env)
    second = shop(*args, "--username", "second", env=cli_env)

    assert first.returncode == 0, first.stderr
    assert second.returncode != 0
    assert "email" in second.stderr.lower()


async def test_users_create_without_a_terminal_names_what_is_missing(cli_env):
    result = shop("users", "create", "--email", "x@example.com", env=cli_env)

    assert result.returncode == 2
    assert "--username" in result.stderr


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"shop dev exited with {process.returncode}")
        try:
            response = httpx.get(url + "/health/ready", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError("shop dev did not become ready")


def _run_dev(data_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "MEMCACHED_URL", "SECRET_KEY", "DEBUG"}
    }
    env["SHOP_DEV_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "shop.cli", "dev", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen[bytes], signum: int = signal.SIGINT) -> str:
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output.decode(errors="replace")


def test_dev_mode_serves_the_shop_and_keeps_its_data(tmp_path):
    data_dir = tmp_path / "dev"
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    first = _run_dev(data_dir, port)
    try:
        ready = _wait_ready(url, first)
        docs = httpx.get(url + "/api/docs/", timeout=5)
        registered = httpx.post(
            url + "/api/auth/register/",
            json={
                "username": "newcomer",
                "email": "newcomer@example.com",
                "password": "Quite-Long-Passphrase-7",
                "password_confirm": "Quite-Long-Passphrase-7",
            },
            timeout=10,
        )
    finally:
        output = _stop(first)

    assert ready.json()["checks"]["database"]["status"] == "ok"
    assert docs.status_code == 200
    assert f"{url}/api/docs/" in output
    assert str(data_dir.resolve()) in output
    assert registered.status_code == 201, registered.text

    second = _run_dev(data_dir, port)
    try:
        _wait_ready(url, second)
        login = httpx.post(
            url + "/api/auth/login/",
            json={"email": "newcomer@example.com", "password": "Quite-Long-Passphrase-7"},
            timeout=10,
        )
    finally:
        _stop(second)

    assert login.status_code == 200, login.text


def test_help_says_configuration_comes_from_the_environment():
    result = shop("--help", env=dict(os.environ))

    assert result.returncode == 0
    assert "environment" in result.stdout and ".env.example" in result.stdout


def test_run_with_an_unreachable_database_starts_and_warns_once(cli_env):
    port = free_port()
    env = {**cli_env, "DATABASE_URL": "postgresql://shop:secret-pw@127.0.0.1:1/shopdb"}
    process = subprocess.Popen(
        [sys.executable, "-m", "shop.cli", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        live = ready = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and live is None:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.25)
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        time.sleep(1)  # the start-up probe runs beside start-up
    finally:
        output = _stop(process)

    assert live is not None and live.status_code == 200
    assert ready.status_code == 503
    warnings = [line for line in output.splitlines() if "unreachable at start-up" in line]
    assert len(warnings) == 1, output
    assert "127.0.0.1:1/shopdb" in warnings[0] and "secret-pw" not in warnings[0]


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_dev_stops_its_postgresql_on_sigterm_and_sighup(tmp_path, signum):
    """SIGTERM is what kill, timeout, systemd and containers send; it used to leave PostgreSQL up."""
    data_dir = tmp_path / "dev"
    port = free_port()
    process = _run_dev(data_dir, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process)
        postgres = _postmaster_pid(data_dir)
    finally:
        output = _stop(process, signum)

    assert process.returncode == 0, output
    assert _gone(postgres), f"embedded PostgreSQL (pid {postgres}) still running:\n{output}"
    assert "embedded PostgreSQL stopped" in output


def test_dev_reuses_and_then_stops_a_postgresql_left_by_a_killed_run(tmp_path):
    data_dir = tmp_path / "dev"
    port = free_port()
    killed = _run_dev(data_dir, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", killed)
    finally:
        killed.kill()  # SIGKILL: nothing of ours runs, PostgreSQL stays up
        killed.communicate()
    leftover = _postmaster_pid(data_dir)

    again = _run_dev(data_dir, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", again)
    finally:
        output = _stop(again, signal.SIGTERM)

    assert f"left running by an earlier run (pid {leftover})" in output
    assert _gone(leftover), output


def test_dev_makes_a_staff_user_once_and_keeps_postgresql_chatter_in_a_file(tmp_path):
    data_dir = tmp_path / "dev"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = _run_dev(data_dir, port, "--staff", "admin@example.com")
    try:
        _wait_ready(url, first)
    finally:
        output = _stop(first)
    password = output.split("with password: ", 1)[1].split()[0]

    second = _run_dev(data_dir, port, "--staff", "admin@example.com")
    try:
        _wait_ready(url, second)
        login = httpx.post(
            url + "/api/auth/login/",
            json={"email": "admin@example.com", "password": password},
            timeout=10,
        )
        staff_view = httpx.get(
            url + "/api/admin/orders/",
            headers={"Authorization": f"Bearer {login.json()['access']}"},
            timeout=10,
        )
    finally:
        again = _stop(second)

    assert login.status_code == 200 and login.json()["user"]["is_staff"] is True
    assert staff_view.status_code == 200
    assert "already exists" in again and "with password" not in again
    # initdb's "Success. You can now start the database server using ..." and pgserver's
    # INFO lines go to a file, not before the shop's banner.
    assert "You can now start the database server" not in output
    assert "pgdata" not in output.split("starting embedded PostgreSQL", 1)[1].split("\n", 1)[1]
    assert "You can now start the database server" in (data_dir / "postgres.log").read_text()
