"""Which field a msgspec validation error is about, read from its message.

msgspec's `ValidationError` carries no structured location (msgspec 0.23: only
``args[0]``, the message), yet a client needs the failing field named in the
problem's ``errors``. The message says it in two forms:

* ``Expected `int`, got `str` - at `$.items[0].quantity` `` names the field by
  its JSON path;
* ``Object missing required field `quantity` - at `$.items[0]` `` (or
  ``contains unknown field``) names the object holding it, plus the name.

This module is the one place that reads those messages: `field_of`,
`names_a_field` and `reason`. ``tests/platform/test_compat_msgspec.py``
produces each form with the installed msgspec and fails loudly when the text
changes; pyproject.toml bounds msgspec below the next minor version.
"""

from __future__ import annotations

import re

__all__ = ["field_of", "names_a_field", "reason"]

_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")


def field_of(message: str, parent: str = "") -> str | None:
    """The field a validation message is about (``items[0].quantity``), or None for the whole body.

    ``parent`` is a path already known from elsewhere (Litestar's ``key``),
    used when the message has no ``at `$...` `` part.
    """
    at = _AT_PATH.search(message)
    named = _NAMED_FIELD.search(message)
    path = at["path"] if at else parent
    return ".".join(filter(None, (path, named["name"] if named else ""))) or None


def names_a_field(message: str) -> bool:
    """Whether the message names the field itself (missing or unknown), not only where it is."""
    return _NAMED_FIELD.search(message) is not None


def reason(message: str) -> str:
    """The message without its location: ``Expected `int`, got `str` ``."""
    return message.split(" - at `", 1)[0]
