"""polyfactory factories for arranging tests, plus token helpers.

Build with explicit overrides for what the test is about; let the factory
fill the rest with unique values. ``persist`` adds and commits.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

from polyfactory import Use
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.ext.asyncio import AsyncSession

from shop.accounts.models import User
from shop.accounts.security import encode_token, passwords_for
from shop.catalog.models import Category, Product
from shop.settings import PasswordSettings, Settings

T = TypeVar("T")

PASSWORD = "Correct-Horse-42"
_PASSWORD_HASH = passwords_for(PasswordSettings()).hash(PASSWORD)


class UserFactory(SQLAlchemyFactory[User]):
    __model__ = User
    __set_relationships__ = False
    __set_primary_key__ = False
    __check_model__ = False

    email = Use(lambda: f"user{UserFactory.__faker__.unique.random_int(1, 10**9)}@example.com")
    username = Use(lambda: f"user{UserFactory.__faker__.unique.random_int(1, 10**9)}")
    password_hash = Use(lambda: _PASSWORD_HASH)
    phone = ""
    address = ""
    is_staff = False
    is_active = True


class ProductFactory(SQLAlchemyFactory[Product]):
    __model__ = Product
    __set_relationships__ = False
    __set_primary_key__ = False
    __check_model__ = False

    name = Use(lambda: f"Product {ProductFactory.__faker__.unique.random_int(1, 10**9)}")
    description = "A fine product"
    price = Use(lambda: Decimal(ProductFactory.__random__.randint(100, 99_999)) / 100)
    stock = 100
    category = Use(lambda: ProductFactory.__random__.choice(list(Category)).value)
    archived = False


async def persist(db: AsyncSession, *objects: T) -> list[T]:
    db.add_all(objects)
    await db.commit()
    return list(objects)


async def make_user(db: AsyncSession, **overrides: Any) -> User:
    (user,) = await persist(db, UserFactory.build(**overrides))
    return user


async def make_product(db: AsyncSession, **overrides: Any) -> Product:
    (product,) = await persist(db, ProductFactory.build(**overrides))
    return product


def access_token(settings: Settings, user: User) -> str:
    token, _ = encode_token(settings.tokens, user.id, "access")
    return token


def auth_headers(settings: Settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token(settings, user)}"}
