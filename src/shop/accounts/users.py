"""Users: the rules an account's details follow, and `UserService`, the one way a user is created or changed.

`UserService.create_user` is the one way a user comes to exist: registration
(`shop.accounts.services.register`) and `shop users create` both call it, so
the rules are written once.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy.exc import IntegrityError

from shop.accounts.models import User
from shop.accounts.passwords import password_problems
from shop.accounts.repositories import RefreshFamilyRepository, UserRepository
from shop.accounts.security import Passwords, forget_user, passwords_for
from shop.db import after_commit
from shop.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from shop.accounts.schemas import ProfileUpdate
    from shop.cache import Cache
    from shop.settings import Settings

__all__ = [
    "EmailTaken",
    "InvalidCredentials",
    "UserService",
    "UsernameTaken",
    "WrongPassword",
    "create_user_from_cli",
    "email_problem",
    "normalise_email",
    "normalise_username",
    "username_problem",
]

# Django's EmailValidator: ASCII dot-atom local part; an IDN domain is checked IDNA-encoded.
_EMAIL_USER = re.compile(r"^[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*\Z")
_EMAIL_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}(?<!-)\Z")
_USERNAME = re.compile(r"^[\w.@+-]+\Z")


class EmailTaken(Conflict):
    """A user with this email already exists."""


class UsernameTaken(Conflict):
    """A user with this username already exists."""


class WrongPassword(Forbidden):
    """The current password is wrong."""


class InvalidCredentials(Unauthorized):
    """No active account found with the given credentials."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_username(username: str) -> str:
    return unicodedata.normalize("NFKC", username.strip())


def email_problem(email: str) -> str | None:
    """Why ``email`` (already normalised) is not an address, or None."""
    user, _, domain = email.rpartition("@")
    if not user or not domain or len(email) > 254 or not _EMAIL_USER.match(user):
        return "Enter a valid email address."
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "Enter a valid email address."
    if not _EMAIL_DOMAIN.match(ascii_domain):
        return "Enter a valid email address."
    return None


def username_problem(username: str) -> str | None:
    if not username:
        return "This field may not be blank."
    if len(username) > 150:
        return "Ensure this field has no more than 150 characters."
    if not _USERNAME.match(username):
        return "Enter a valid username: letters, digits and @ . + - _ only."
    return None


class UserService:
    """The rules of a user's account, over `UserRepository`; it rides the caller's transaction.

    A plain class: advanced-alchemy's service base adds generic CRUD the shop
    does not expose, and every method here is a rule of its own.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = UserRepository(session=session)

    async def create_user(
        self,
        *,
        email: str,
        username: str,
        password: str,
        phone: str = "",
        address: str = "",
        passwords: Passwords,
        staff: bool = False,
        password_confirm: str | None = None,
    ) -> User:
        """Check every rule, report all failures at once (400), then uniqueness (409)."""
        email = normalise_email(email)
        username = normalise_username(username)
        errors: list[dict[str, str]] = []
        if problem := email_problem(email):
            errors.append({"field": "email", "message": problem})
        if problem := username_problem(username):
            errors.append({"field": "username", "message": problem})
        if password_confirm is not None and password != password_confirm:
            errors.append(
                {"field": "password_confirm", "message": "The two password fields didn't match."}
            )
        errors += [
            {"field": "password", "message": message}
            for message in password_problems(password, username=username, email=email)
        ]
        if errors:
            raise InvalidInput("The account details are invalid.", errors=errors)
        await self._refuse_taken(email, username)
        user = User(
            email=email,
            username=username,
            password_hash=await passwords.hash_off_loop(password),
            phone=phone,
            address=address,
            is_staff=staff,
            is_active=True,
        )
        session = self.session
        try:
            async with session.begin_nested():
                session.add(user)
                await session.flush()
        except IntegrityError:
            # Two registrations raced past the checks above; the unique index decided,
            # after the winner committed, so the same checks now name the taken field.
            await self._refuse_taken(email, username)
            raise EmailTaken("A user with this email or username already exists.") from None
        await session.refresh(user)
        return user

    async def _refuse_taken(self, email: str, username: str) -> None:
        if await self.repository.email_taken(email):
            raise EmailTaken(
                errors=[{"field": "email", "message": "A user with this email already exists."}]
            )
        if await self.repository.username_taken(username):
            raise UsernameTaken(
                errors=[
                    {"field": "username", "message": "A user with this username already exists."}
                ]
            )

    async def authenticate(self, email: str, password: str, passwords: Passwords) -> User | None:
        """The active user with this email and password, or None.

        An unknown email still verifies a dummy hash, and an inactive user's
        password is still checked, so every failure takes about as long.
        """
        user = await self.repository.get_by_email(normalise_email(email))
        valid, new_hash = await passwords.verify_off_loop(
            password, user.password_hash if user else None
        )
        if user is None or not valid or not user.is_active:
            return None
        if new_hash is not None:
            # The hashing parameters changed since: upgrade while we know the password.
            user.password_hash = new_hash
            await self.session.flush()
        return user

    async def get_profile(self, user_id: int) -> User:
        user = await self.repository.get_by_id(user_id)
        if user is None:
            raise NotFound("User not found.")
        return user

    async def update_profile(self, user_id: int, changes: ProfileUpdate, cache: Cache) -> User:
        user = await self.get_profile(user_id)
        if changes.username is not msgspec.UNSET:
            username = normalise_username(changes.username)
            if problem := username_problem(username):
                raise InvalidInput(problem, errors=[{"field": "username", "message": problem}])
            if await self.repository.username_taken(username, excluding=user_id):
                raise UsernameTaken(
                    errors=[
                        {
                            "field": "username",
                            "message": "A user with this username already exists.",
                        }
                    ]
                )
            user.username = username
        if changes.phone is not msgspec.UNSET:
            user.phone = (changes.phone or "").strip()
        if changes.address is not msgspec.UNSET:
            user.address = (changes.address or "").strip()
        await self._flush_unique(user)
        after_commit(self.session, lambda: forget_user(cache, user_id))
        return user

    async def set_flags(
        self,
        user_id: int,
        *,
        cache: Cache,
        actor_id: int,
        is_active: bool | None = None,
        is_staff: bool | None = None,
    ) -> User:
        """Activate/deactivate or promote/demote; takes effect on the user's next request.

        A deactivated user's refresh families are revoked too, so no token
        pair outlives the decision. Staff may not change their own flags:
        that is how the last staff member locks everyone out.
        """
        if user_id == actor_id:
            raise Conflict("You cannot change your own staff or active flags.")
        user = await self.get_profile(user_id)
        if is_staff is not None:
            user.is_staff = is_staff
        if is_active is not None:
            user.is_active = is_active
            if not is_active:
                await RefreshFamilyRepository(session=self.session).revoke_all_of(user_id)
        await self.session.flush()
        after_commit(self.session, lambda: forget_user(cache, user_id))
        return user

    async def staff_page(
        self,
        *,
        search: str | None = None,
        is_staff: bool | None = None,
        is_active: bool | None = None,
        joined_from: datetime | None = None,
        joined_to: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[list[User], int]:
        """The staff console's user list."""
        return await self.repository.staff_page(
            search=search.strip() if search else None,
            is_staff=is_staff,
            is_active=is_active,
            joined_from=joined_from,
            joined_to=joined_to,
            limit=limit,
            offset=offset,
        )

    async def names_of(self, user_ids: list[int]) -> dict[int, str]:
        return await self.repository.names_of(user_ids)

    async def _flush_unique(self, user: User) -> None:
        session = self.session
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            # Raced past the checks by another request; the unique indexes decided.
            raise Conflict("A user with this email or username already exists.") from None
        await session.refresh(user)


async def create_user_from_cli(
    settings: Settings, *, email: str, username: str, password: str, staff: bool
) -> int:
    from shop.db import create_engine, create_session_maker

    engine = create_engine(settings.database)
    try:
        async with create_session_maker(engine)() as session, session.begin():
            user = await UserService(session=session).create_user(
                email=email,
                username=username,
                password=password,
                staff=staff,
                passwords=passwords_for(settings.passwords),
            )
            return user.id
    finally:
        await engine.dispose()
