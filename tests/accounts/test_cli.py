"""`shop users create` goes through the same rules as registration."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.accounts.users import EmailTaken, create_user_from_cli
from shop.cli import main
from tests.conftest import make_settings
from tests.support.factories import make_user


@pytest.fixture
def env(postgres_url: str) -> dict[str, str]:
    return {"SECRET_KEY": "test-secret-key-that-is-long-enough", "DATABASE_URL": postgres_url}


def create(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["users", "create", *args], env=env)
    return result.exit_code, result.output


def test_creates_a_staff_user_who_can_log_in(env: dict[str, str]) -> None:
    code, output = create(
        env,
        "--email",
        "Admin@Example.com",
        "--username",
        "admin",
        "--password",
        "StrongPass123!",
        "--staff",
    )

    assert code == 0, output
    assert "created staff user admin" in output


async def test_created_staff_user_is_stored_normalised_and_can_log_in(
    env: dict[str, str], db: AsyncSession, client: httpx.AsyncClient
) -> None:
    settings = make_settings(env["DATABASE_URL"], None)
    user_id = await create_user_from_cli(
        settings, email="Admin@Example.com", username="admin", password="StrongPass123!", staff=True
    )

    row = (await db.execute(select(User.id, User.email, User.is_staff))).one()
    assert tuple(row) == (user_id, "admin@example.com", True)
    login = await client.post(
        "/api/auth/login/", json={"email": "admin@example.com", "password": "StrongPass123!"}
    )
    assert login.status_code == 200 and login.json()["user"]["is_staff"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--email", "a@example.com", "--username", "admin", "--password", "short"],
            "password: This password is too short",
        ),
        (
            ["--email", "a@example.com", "--username", "admin", "--password", "password123"],
            "too common",
        ),
        (
            ["--email", "not-an-email", "--username", "admin", "--password", "StrongPass123!"],
            "email: Enter a valid",
        ),
        (
            ["--email", "a@example.com", "--username", "bad name", "--password", "StrongPass123!"],
            "username:",
        ),
    ],
)
def test_refuses_what_registration_refuses(
    env: dict[str, str], args: list[str], message: str
) -> None:
    code, output = create(env, *args)

    assert code != 0
    assert message in output


async def test_refuses_a_taken_email(env: dict[str, str], db: AsyncSession) -> None:
    await make_user(db, email="admin@example.com")

    with pytest.raises(EmailTaken):
        await create_user_from_cli(
            make_settings(env["DATABASE_URL"], None),
            email="ADMIN@example.com",
            username="admin",
            password="StrongPass123!",
            staff=True,
        )
