"""Business rules of accounts.

`UserService.create` is the one way a user comes to exist: registration and
`shop users create` both call it, so the rules are written once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.exc import IntegrityError

from shop.accounts.models import User
from shop.accounts.repositories import UserRepository
from shop.accounts.security import hash_password
from shop.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from shop.settings import Settings


class EmailTaken(Conflict):
    """A user with this email already exists."""


class UsernameTaken(Conflict):
    """A user with this username already exists."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserService(SQLAlchemyAsyncRepositoryService[User, UserRepository]):
    repository_type = UserRepository

    async def create_user(
        self,
        *,
        email: str,
        username: str,
        password: str,
        phone: str = "",
        address: str = "",
        staff: bool = False,
    ) -> User:
        email = normalise_email(email)
        username = username.strip()
        if not email or "@" not in email:
            raise InvalidInput("Enter a valid email address.", errors=[{"field": "email", "message": "invalid"}])
        if await self.repository.email_taken(email):
            raise EmailTaken(errors=[{"field": "email", "message": "already registered"}])
        if await self.repository.username_taken(username):
            raise UsernameTaken(errors=[{"field": "username", "message": "already taken"}])
        user = User(
            email=email,
            username=username,
            password_hash=hash_password(password),
            phone=phone,
            address=address,
            is_staff=staff,
            is_active=True,
        )
        try:
            async with self.repository.session.begin_nested():
                self.repository.session.add(user)
                await self.repository.session.flush()
        except IntegrityError:
            # Two registrations raced past the checks above; the unique index decided.
            raise EmailTaken("A user with this email or username already exists.") from None
        await self.repository.session.refresh(user)
        return user


async def create_user_from_cli(
    settings: Settings, *, email: str, username: str, password: str, staff: bool
) -> int:
    from shop.db import create_engine, create_session_maker

    engine = create_engine(settings.database)
    try:
        async with create_session_maker(engine)() as session, session.begin():
            user = await UserService(session=session).create_user(
                email=email, username=username, password=password, staff=staff
            )
            return user.id
    finally:
        await engine.dispose()
