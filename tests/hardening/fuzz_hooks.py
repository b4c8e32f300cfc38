"""Schemathesis hooks for the fuzzing run (loaded through SCHEMATHESIS_HOOKS).

One extra check beyond the built-in ones: every error response, documented or
not, is RFC 9457 problem details.
"""

from __future__ import annotations

import json

import schemathesis


@schemathesis.check
def errors_are_problem_json(ctx, response, case):
    """Every 4xx/5xx response is application/problem+json with status, title and detail."""
    if response.status_code < 400:
        return None
    headers = {name.lower(): values for name, values in response.headers.items()}
    media_type = (headers.get("content-type") or [""])[0]
    if not media_type.startswith("application/problem+json"):
        raise AssertionError(f"{response.status_code} answered as {media_type!r}, not problem+json")
    body = json.loads(response.content)
    missing = {"status", "title", "detail"} - set(body)
    if missing or body["status"] != response.status_code:
        raise AssertionError(f"problem details incomplete or inconsistent: {body}")
    return None
