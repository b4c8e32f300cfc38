"""The password rules on their own (registration and the CLI both apply them)."""

from __future__ import annotations

import pytest

from shop.accounts.passwords import ENTIRELY_NUMERIC, TOO_COMMON, TOO_SHORT, password_problems

SIMILAR_USERNAME = "The password is too similar to the username."
SIMILAR_EMAIL = "The password is too similar to the email address."


@pytest.mark.parametrize(
    ("password", "username", "email", "problems"),
    [
        ("StrongPass123!", "u1", "u1@example.com", []),  # the README's password is fine
        ("Tr0ub4dor&3x", "", "", []),  # no personal data to compare with
        ("Ab1!xyz", "", "", [TOO_SHORT]),  # 7 characters
        ("Ab1!wxyz", "", "", []),  # exactly 8 characters
        ("73029184615", "", "", [ENTIRELY_NUMERIC]),  # digits only, not common
        ("1234567", "", "", [TOO_SHORT, ENTIRELY_NUMERIC, TOO_COMMON]),  # every rule at once
        ("PASSWORD", "", "", [TOO_COMMON]),  # common, whatever the case
        (" qwerty123 ", "", "", [TOO_COMMON]),  # common, surrounding spaces ignored
        ("alexander99", "alexander", "", [SIMILAR_USERNAME]),  # username plus digits
        ("ALEXANDER99", "alexander", "", [SIMILAR_USERNAME]),  # case does not hide it
        ("Jane.Doe@Example1", "", "jane.doe@example.com", [SIMILAR_EMAIL]),  # the email itself
        ("Petersburg!", "", "someone@petersburg.ru", [SIMILAR_EMAIL]),  # a part of the domain
        ("Kx9#mQ2vLp", "alexander", "alexander@example.com", []),  # unrelated to both
    ],
)
def test_password_problems(password: str, username: str, email: str, problems: list[str]) -> None:
    assert password_problems(password, username=username, email=email) == problems
