"""Tables of the accounts domain: users, refresh-token families, login throttling."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    """Stored normalised (lower case); the unique index makes it case-insensitively unique."""
    username: Mapped[str] = mapped_column(String(150))
    password_hash: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(String(32), default="", server_default="")
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    date_joined: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    imported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When `shop import django` last wrote this user; null for users made in the shop."""
    imported_password_hash: Mapped[str | None] = mapped_column(Text)
    """The Django hash as last imported: a later pass replaces ``password_hash`` only when
    this changed in the source, so a hash the shop already upgraded at login survives."""

    __table_args__ = (
        Index("uq_users_email_lower", func.lower(email), unique=True),
        Index("uq_users_username_lower", func.lower(username), unique=True),
    )


class RefreshFamily(Base):
    """One login session: every refresh token issued from one login belongs to it.

    Only the newest token (``current_jti``) may be used; presenting an older one
    means it was copied, so the whole family is revoked.
    """

    __tablename__ = "refresh_families"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    current_jti: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed-login counters per key (``email:<addr>``, ``ip:<addr>``), seen by all instances."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
