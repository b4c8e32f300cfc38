"""Queries of the accounts domain."""

from __future__ import annotations

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import func, select

from shop.accounts.models import User


class UserRepository(SQLAlchemyAsyncRepository[User]):
    model_type = User

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(func.lower(User.email) == email.lower()))
        return result.scalar_one_or_none()

    async def email_taken(self, email: str) -> bool:
        result = await self.session.execute(select(User.id).where(func.lower(User.email) == email.lower()))
        return result.first() is not None

    async def username_taken(self, username: str, *, excluding: int | None = None) -> bool:
        query = select(User.id).where(func.lower(User.username) == username.lower())
        if excluding is not None:
            query = query.where(User.id != excluding)
        return (await self.session.execute(query)).first() is not None
