"""Encoded product responses and their ETags.

`Encoded` is a response body exactly as sent, with its ETag. The ETag is a
hash of the body: the same content has the same tag across version
bumps, so a client revalidating after an unrelated change still gets a 304.
It is weak (``W/``) because gzip may re-encode the body on the way out.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["Encoded", "etag_matches"]


class Encoded(NamedTuple):
    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Encoded:
        return cls(body, f'W/"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against our ETag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))
