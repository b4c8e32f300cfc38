"""Django's password hashes, made by Django itself, verified by the shop (and only those)."""

from __future__ import annotations

import asyncio

import pytest

from shop.accounts.django_hashes import DjangoHasher, django_hash_kind
from shop.accounts.security import Passwords
from shop.settings import PasswordSettings
from tests.importer.conftest import _configure_django

PASSWORD = "Correct-Horse-42"


def django_hash(hasher: str, password: str | None = PASSWORD) -> str:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password

    _configure_django()
    if hasher == "pbkdf2_sha256_old":  # an older row: fewer iterations than Django 5.2's
        return PBKDF2PasswordHasher().encode(password or "", "oldsalt", iterations=36000)
    return make_password(password, hasher=hasher)


@pytest.mark.parametrize(
    "hasher", ["pbkdf2_sha256", "pbkdf2_sha256_old", "pbkdf2_sha1", "argon2", "scrypt"]
)
def test_django_hash_verifies_only_its_password(hasher):
    hashed = django_hash(hasher)

    assert DjangoHasher.identify(hashed)
    assert DjangoHasher().verify(PASSWORD, hashed) is True
    assert DjangoHasher().verify(PASSWORD + "x", hashed) is False
    assert DjangoHasher().verify(PASSWORD.lower(), hashed) is False


@pytest.mark.parametrize(
    ("hashed", "kind"),
    [
        ("!" + "x" * 40, "unusable"),  # make_password(None)
        ("bcrypt_sha256$$2b$12$" + "a" * 53, "bcrypt_sha256"),  # needs bcrypt: never matches
        ("pbkdf2_sha256$abc$salt$AAAA", "pbkdf2_sha256"),  # corrupt iterations
        ("pbkdf2_sha256$99999999999$salt$AAAA", "pbkdf2_sha256"),  # absurd cost: refused
        ("pbkdf2_sha256$1000$salt", "pbkdf2_sha256"),  # truncated
        ("argon2$argon2id$garbage", "argon2"),
        ("scrypt$16384$salt$8$1$@@@", "scrypt"),
    ],
)
def test_hashes_no_password_can_match_never_log_in(hashed, kind):
    assert django_hash_kind(hashed) == kind
    assert DjangoHasher().verify("", hashed) is False
    assert DjangoHasher().verify("x" * 40, hashed) is False


def test_other_formats_are_not_taken_for_django_ones():
    assert not DjangoHasher.identify("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
    assert not DjangoHasher.identify("md5$salt$0123")
    assert not DjangoHasher.identify("plain text")


def test_a_django_hash_is_replaced_by_argon2id_on_success_only():
    passwords = Passwords(PasswordSettings(time_cost=1, memory_kib=8, parallelism=1))
    hashed = django_hash("pbkdf2_sha256_old")

    assert passwords.verify("wrong-password", hashed) == (False, None)
    valid, new_hash = passwords.verify(PASSWORD, hashed)
    assert valid is True
    assert new_hash is not None and new_hash.startswith("$argon2id$")
    assert passwords.verify(PASSWORD, new_hash)[0] is True


def test_unusable_hash_costs_a_dummy_verification_like_an_unknown_email():
    passwords = Passwords(PasswordSettings(time_cost=1, memory_kib=8, parallelism=1))

    assert passwords.verify("!", "!" + "x" * 40) == (False, None)
    assert passwords.verify("anything", None) == (False, None)


def test_failed_logins_wait_as_long_as_the_slowest_django_verification_seen():
    """An imported user's wrong password costs PBKDF2's time; afterwards an unknown email
    (Argon2's dummy) is padded to the same floor, so the two cannot be told apart."""
    passwords = Passwords(PasswordSettings(time_cost=1, memory_kib=8, parallelism=1))
    hashed = django_hash("pbkdf2_sha256")  # Django 5.2's million rounds

    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        await passwords.verify_off_loop("wrong-password", hashed)
        floor = passwords._legacy_floor
        started = loop.time()
        await passwords.verify_off_loop("wrong-password", None)
        return floor, loop.time() - started

    floor, unknown_email = asyncio.run(scenario())

    assert floor > 0
    assert unknown_email >= floor * 0.95
