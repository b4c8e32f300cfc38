"""Tokens, password hashing, and who is calling.

* Passwords: Argon2id through pwdlib (`Passwords`, cost from PASSWORD_HASH_*);
  request handlers use the ``_off_loop`` methods, which run them in a thread.
  Hashes imported from the Django app are verified too (`DjangoHasher`) and
  replaced by Argon2id at the user's first successful login.
* Tokens: HS256 JWTs (pyjwt) keyed by SECRET_KEY with claims ``sub``, ``exp``,
  ``iat``, ``jti``, ``type`` (``access`` or ``refresh``); the algorithm is pinned
  at decode, every claim is required, and a token of the wrong type is refused.
* `JWTAuthMiddleware` authenticates every route that is not marked public
  (``opt={"exclude_from_auth": True}``). It loads the caller as a `CurrentUser`
  snapshot on every request, from the cache (key ``user_<id>``) or PostgreSQL,
  so a deactivated user or demoted staff member loses access on the next
  request: every change to a user deletes the snapshot after commit
  (`forget_user`), and snapshots live at most ``user_ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import jwt
import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import bindparam, select

from shop import reads
from shop.accounts.django_hashes import DjangoHasher
from shop.accounts.models import User
from shop.errors import Forbidden, Unauthorized
from shop.schemas import MAX_ID

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from shop.cache import Cache
    from shop.settings import PasswordSettings, Settings, TokenSettings

__all__ = [
    "CurrentUser",
    "InvalidToken",
    "JWTAuthMiddleware",
    "Passwords",
    "TokenClaims",
    "decode_token",
    "encode_token",
    "forget_user",
    "passwords_for",
    "requires_staff",
    "verify_access_token",
]

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]

_MAX_LEGACY_FLOOR = 2.0
"""Seconds; see `Passwords`."""

_HASHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="argon2")
"""Where Argon2 runs: off the event loop, one hash at a time per process.

On the event loop a hash stalls every other request of the worker. argon2-cffi
releases the GIL, so a thread lets the loop keep serving. One thread per
process because the API runs one process per core: more threads would only
share the same cores, and this caps the CPU (and the memory: one hash's
``memory_kib`` each) that a burst of logins can take from everything else;
the rest wait their turn.
"""


class Passwords:
    """Argon2id hashing (pwdlib) with the configured cost; see `passwords_for`.

    Django hashes (imported users who have not logged in since) verify through
    `DjangoHasher` and come back with an Argon2id ``new_hash``. Their cost is
    not Argon2's (PBKDF2 with a million rounds takes several times longer),
    which would tell an unknown email from an imported one by the time a
    failed login takes. So a failed verification is padded, by sleeping (no
    CPU), to the slowest Django-hash verification this process has made
    (`_legacy_floor`): once imported users log in, unknown emails, wrong
    passwords and unusable hashes all answer after that floor. Until a
    process has verified one Django hash there is nothing to match.
    """

    def __init__(self, settings: PasswordSettings) -> None:
        hasher = Argon2Hasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_kib,
            parallelism=settings.parallelism,
        )
        self._hash = PasswordHash((hasher, DjangoHasher()))
        self._dummy = self._hash.hash("shop-dummy-password-for-timing")
        self._legacy_floor = 0.0

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """``(valid, new_hash)``; ``new_hash`` is set when the hash should be upgraded
        (it was made with other parameters).

        With ``hashed=None`` (unknown user) a dummy hash made with the same
        parameters is verified anyway, so an unknown email takes as long as a
        wrong password.
        """
        if hashed is None or (
            DjangoHasher.identify(hashed) and not DjangoHasher.verifiable(hashed)
        ):
            # Unknown user, or an imported hash no password matches (unusable, bcrypt).
            self._hash.verify_and_update(password, self._dummy)
            return False, None
        try:
            return self._hash.verify_and_update(password, hashed)
        except Exception:  # a malformed stored hash must not become a 500
            return False, None

    def _timed_verify(self, password: str, hashed: str | None) -> tuple[bool, str | None, float]:
        """`verify` and its duration (measured in the thread: the queue wait is not the hash's)."""
        started = time.perf_counter()
        valid, new_hash = self.verify(password, hashed)
        return valid, new_hash, time.perf_counter() - started

    async def hash_off_loop(self, password: str) -> str:
        """`hash` in the hashing thread."""
        return await asyncio.get_running_loop().run_in_executor(_HASHING, self.hash, password)

    async def verify_off_loop(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """`verify` (dummy hash included) in the hashing thread; failures padded (see the class)."""
        loop = asyncio.get_running_loop()
        valid, new_hash, elapsed = await loop.run_in_executor(
            _HASHING, self._timed_verify, password, hashed
        )
        if hashed is not None and DjangoHasher.verifiable(hashed):
            # Capped: one absurd stored cost must not slow every failed login for good.
            self._legacy_floor = max(self._legacy_floor, min(elapsed, _MAX_LEGACY_FLOOR))
        if not valid and elapsed < self._legacy_floor:
            await asyncio.sleep(self._legacy_floor - elapsed)
        return valid, new_hash


@functools.cache
def passwords_for(settings: PasswordSettings) -> Passwords:
    """One `Passwords` per parameter set and process (the dummy hash is made once)."""
    return Passwords(settings)


class TokenClaims(msgspec.Struct, frozen=True):
    sub: str
    exp: int
    iat: int
    jti: str
    type: str
    fam: str | None = None
    """The family (login session) of a refresh token, and of the access tokens issued with it."""


def encode_token(
    settings: TokenSettings,
    user_id: int,
    token_type: TokenType,
    *,
    family: uuid.UUID | None = None,
    jti: uuid.UUID | None = None,
) -> tuple[str, TokenClaims]:
    now = datetime.now(UTC)
    lifetime = (
        timedelta(minutes=settings.access_minutes)
        if token_type == "access"
        else timedelta(days=settings.refresh_days)
    )
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": str(jti or uuid.uuid4()),
        "type": token_type,
    }
    if family is not None:
        claims["fam"] = str(family)
    token = jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)
    return token, msgspec.convert(claims, TokenClaims)


class InvalidToken(Unauthorized):
    """Token is invalid or expired."""


def decode_token(
    settings: TokenSettings, token: str, expected_type: TokenType, *, allow_expired: bool = False
) -> TokenClaims:
    """Verify signature, expiry and type; any failure is the same 401.

    Only HS256 is accepted, whatever the token's header claims, so ``alg:
    none`` and algorithm-confusion tokens fail the signature check.
    ``allow_expired`` still verifies the signature (logout accepts a refresh
    token that has just expired).
    """
    try:
        raw = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            leeway=settings.leeway_seconds,
            options={
                "require": ["sub", "exp", "iat", "jti", "type"],
                "verify_exp": not allow_expired,
            },
        )
        claims = msgspec.convert(raw, TokenClaims)
        user_id = int(claims.sub)
    except (jwt.PyJWTError, msgspec.ValidationError, ValueError, TypeError):
        raise InvalidToken() from None
    if not 0 < user_id <= MAX_ID or claims.sub != str(user_id):
        raise InvalidToken()
    if claims.type != expected_type:
        raise InvalidToken(f"Token is invalid or expired: expected a {expected_type} token.")
    return claims


_VERIFIED_MAX = 4096
_verified: dict[tuple[str, str], TokenClaims] = {}
"""(secret key, access token) -> its verified claims, until the token expires.

Verifying an HS256 token (PyJWT: base64, JSON, HMAC, claim checks) was about
7 % of a cached read. A token's signature and claims never change, so a
token seen before needs only its expiry checked again. Only claims are kept:
the user behind them is loaded on every request (`load_current_user`), so
deactivation still takes effect on the next request. Keyed by the secret too,
so apps with different keys in one process never share an entry. Oldest
entries go first when full (insertion order; a hit does not refresh).
"""


def verify_access_token(settings: TokenSettings, token: str) -> TokenClaims:
    """`decode_token` for access tokens, remembering the tokens already verified."""
    key = (settings.secret_key, token)
    claims = _verified.get(key)
    if claims is not None:
        # PyJWT accepts a token while now < exp + leeway; so does this.
        if time.time() < claims.exp + settings.leeway_seconds:
            return claims
        _verified.pop(key, None)
    claims = decode_token(settings, token, "access")
    if len(_verified) >= _VERIFIED_MAX:
        del _verified[next(iter(_verified))]
    _verified[key] = claims
    return claims


class CurrentUser(msgspec.Struct, frozen=True):
    """What every request knows about its caller; cached as msgpack under ``user_<id>``."""

    id: int
    username: str
    email: str
    is_staff: bool
    is_active: bool


_user_decoder = msgspec.msgpack.Decoder(CurrentUser)


def user_cache_key(user_id: int) -> str:
    return f"user_{user_id}"


async def forget_user(cache: Cache, user_id: int) -> None:
    """Drop the cached snapshot; call after committing any change to the user."""
    await cache.delete(user_cache_key(user_id))


# Built once: building a statement per request cost as much CPU as its round trip.
_SNAPSHOT = select(User.id, User.username, User.email, User.is_staff, User.is_active).where(
    User.id == bindparam("user_id")
)


async def load_current_user(
    user_id: int,
    cache: Cache,
    session_maker: async_sessionmaker[AsyncSession],
    ttl: int,
    connection: ASGIConnection[Any, Any, Any, Any] | None = None,
) -> CurrentUser | None:
    """The caller's snapshot from the cache, else from PostgreSQL (and cached).

    With ``connection``, the route's cached read (`shop.reads`) is looked up in
    the same round trip as the snapshot and kept for the route's hook.
    """
    key = user_cache_key(user_id)
    if connection is not None and (wanted := reads.wanted(connection)) is not None:
        raw, found = await cache.get_and_lookup(key, *wanted)
        reads.keep(connection, wanted[1], found)
    else:
        raw = await cache.get(key)
    if raw is not None:
        try:
            return _user_decoder.decode(raw)
        except msgspec.DecodeError:
            pass
    async with session_maker() as session:
        row = (await session.execute(_SNAPSHOT, {"user_id": user_id})).one_or_none()
    if row is None:
        return None
    user = CurrentUser(
        id=row.id,
        username=row.username,
        email=row.email,
        is_staff=row.is_staff,
        is_active=row.is_active,
    )
    await cache.set(user_cache_key(user_id), msgspec.msgpack.encode(user), ttl)
    return user


class JWTAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise Unauthorized("Authentication credentials were not provided.")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use the Authorization header with a Bearer access token.")
        state = connection.app.state
        settings: Settings = state.settings
        claims = verify_access_token(settings.tokens, token.strip())
        user = await load_current_user(
            int(claims.sub),
            state.cache,
            # one statement: AUTOCOMMIT spares its BEGIN and ROLLBACK round trips (`shop.db`)
            state.statement_session_maker,
            settings.cache.user_ttl,
            connection,  # the route's cache read shares the snapshot's round trip
        )
        if user is None or not user.is_active:
            raise Unauthorized("User is inactive or no longer exists.")
        return AuthenticationResult(user=user, auth=claims)


def requires_staff(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for staff-only routes.

    OPTIONS requests are not authenticated (they describe a route, CORS
    preflights send no token), so there is no user to check and nothing to guard.
    """
    if connection.scope.get("method") == "OPTIONS":
        return
    user = connection.user
    if not isinstance(user, CurrentUser) or not user.is_staff:
        raise Forbidden("Staff only.")
