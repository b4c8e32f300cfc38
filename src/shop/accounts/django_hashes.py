"""Password hashes written by the Django app, verified so its users keep their passwords.

`DjangoHasher` is a pwdlib hasher that only verifies: `Passwords` lists it after
the shop's Argon2id hasher, so pwdlib's ``verify_and_update`` returns a fresh
Argon2id hash on the first successful login (the same rehash-on-login path as
a change of Argon2 cost), and the Django hash is gone after that login.

Formats (Django's ``contrib.auth.hashers``):

* ``pbkdf2_sha256$<iterations>$<salt>$<b64>`` (Django's default) and
  ``pbkdf2_sha1$…``: PBKDF2-HMAC over the UTF-8 salt, digest-sized key, standard
  base64 with padding. Verified with the standard library.
* ``argon2$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`` (and the older ``argon2i``):
  argon2-cffi's own encoding after the ``argon2`` prefix; argon2-cffi verifies it.
* ``scrypt$<n>$<salt>$<r>$<p>$<b64>``: ``hashlib.scrypt`` with a 64-byte key.
* ``!…``: an unusable password (``set_unusable_password``); never matches.

``bcrypt_sha256$…`` and ``bcrypt$…`` need the bcrypt library, which the shop
does not depend on: Django writes them only when its operator installed bcrypt
and put that hasher first, which the Django app did not do. They never match;
the importer reports how many users carry one (see docs/migrating-from-django.md).
Unsalted and MD5 hashes are refused for the same reason Django deprecated them.

Comparisons are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import argon2
from pwdlib.hashers.base import ensure_bytes, ensure_str

__all__ = ["UNUSABLE_PREFIX", "DjangoHasher", "django_hash_kind"]

UNUSABLE_PREFIX = "!"
_PBKDF2 = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}
_VERIFIED = ("pbkdf2_sha256", "pbkdf2_sha1", "argon2", "scrypt")
_KNOWN = (*_VERIFIED, "bcrypt_sha256", "bcrypt")
_MAX_PBKDF2_ITERATIONS = 10_000_000
"""A stored hash asking for more is refused: a corrupt row must not burn a core for minutes."""
_argon2 = argon2.PasswordHasher()


def django_hash_kind(hashed: str) -> str:
    """``pbkdf2_sha256``, ``argon2``, ..., ``unusable`` or ``unknown`` (for the importer's report)."""
    if hashed.startswith(UNUSABLE_PREFIX):
        return "unusable"
    algorithm = hashed.partition("$")[0]
    return algorithm if algorithm in _KNOWN else "unknown"


def _b64_equal(computed: bytes, stored: str) -> bool:
    return hmac.compare_digest(base64.b64encode(computed), stored.encode("ascii", "replace"))


def _verify_pbkdf2(password: bytes, hashed: str) -> bool:
    algorithm, iterations, salt, stored = hashed.split("$", 3)
    rounds = int(iterations)
    if not 0 < rounds <= _MAX_PBKDF2_ITERATIONS:
        return False
    digest = _PBKDF2[algorithm]
    computed = hashlib.pbkdf2_hmac(digest, password, salt.encode(), rounds)
    return _b64_equal(computed, stored)


def _verify_scrypt(password: bytes, hashed: str) -> bool:
    _, n, salt, r, p, stored = hashed.split("$", 5)
    computed = hashlib.scrypt(
        password, salt=salt.encode(), n=int(n), r=int(r), p=int(p), maxmem=0, dklen=64
    )
    return _b64_equal(computed, stored)


def _verify_argon2(password: bytes, hashed: str) -> bool:
    try:
        return _argon2.verify(hashed.removeprefix("argon2"), password)
    except argon2.exceptions.VerificationError:
        return False


class DjangoHasher:
    """A pwdlib hasher for Django's formats: it verifies, it never hashes."""

    @classmethod
    def identify(cls, hash: str | bytes) -> bool:
        try:
            text = ensure_str(hash)
        except UnicodeDecodeError:
            return False
        return django_hash_kind(text) != "unknown"

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        raise NotImplementedError("the shop hashes with Argon2id; Django formats are read only")

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        hashed = ensure_str(hash)
        secret = ensure_bytes(password)
        algorithm = django_hash_kind(hashed)
        try:
            if algorithm in _PBKDF2:
                return _verify_pbkdf2(secret, hashed)
            if algorithm == "argon2":
                return _verify_argon2(secret, hashed)
            if algorithm == "scrypt":
                return _verify_scrypt(secret, hashed)
        except (ValueError, binascii.Error, argon2.exceptions.InvalidHashError):
            return False  # a malformed stored hash never logs anyone in
        return False  # unusable, bcrypt: never

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return True

    @staticmethod
    def verifiable(hashed: str) -> bool:
        """True when a login can succeed against ``hashed`` (the importer reports the rest)."""
        return django_hash_kind(hashed) in _VERIFIED
