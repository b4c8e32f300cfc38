"""Password rules, comparable to Django's default validators.

`password_problems` returns one message per failing rule (empty when the
password is acceptable), so a client learns every reason at once:

* at least `MIN_LENGTH` characters;
* not entirely numeric;
* not one of the 20,000 most common passwords (``common-passwords.txt.gz``,
  the list Django bundles, originally compiled by Royce Williams);
* not too similar to the username or the email address, or to a part of
  either (``jane.doe@example.com`` → ``jane``, ``doe``, ``example``, ``com``).
"""

from __future__ import annotations

import functools
import gzip
import re
from difflib import SequenceMatcher
from importlib import resources

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "password_problems"]

MIN_LENGTH = 8
MAX_LENGTH = 256
"""Longer passwords are refused by the wire schema: hashing megabytes per request is a DoS lever."""
MAX_SIMILARITY = 0.7

TOO_SHORT = f"This password is too short. It must contain at least {MIN_LENGTH} characters."
ENTIRELY_NUMERIC = "This password is entirely numeric."
TOO_COMMON = "This password is too common."


@functools.cache
def _common_passwords() -> frozenset[str]:
    data = resources.files("shop.accounts").joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode().splitlines())


def _too_similar(password: str, value: str) -> bool:
    value = value.lower()
    for part in [*re.split(r"\W+", value), value]:
        if not part:
            continue
        # A part ten times shorter than the password cannot reach the ratio
        # (Django's shortcut); skipping it keeps long passwords cheap.
        if len(password) >= 10 * len(part) and len(part) < MAX_SIMILARITY / 2 * len(password):
            continue
        if SequenceMatcher(a=password, b=part).quick_ratio() >= MAX_SIMILARITY:
            return True
    return False


def password_problems(password: str, *, username: str = "", email: str = "") -> list[str]:
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(TOO_SHORT)
    if password.isdigit():
        problems.append(ENTIRELY_NUMERIC)
    if password.lower().strip() in _common_passwords():
        problems.append(TOO_COMMON)
    lowered = password.lower()
    for name, value in (("username", username), ("email address", email)):
        if value and _too_similar(lowered, value):
            problems.append(f"The password is too similar to the {name}.")
    return problems
