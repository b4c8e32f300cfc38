"""The msgspec messages `shop._compat.msgspec` reads still say what it expects.

msgspec's ValidationError has no structured location, so the field a client is
told about comes from the message text. If a test here fails after a msgspec
upgrade, the 400s name the wrong field (or none): adapt the compat module, then
move the version bound in pyproject.toml.
"""

from __future__ import annotations

from importlib import metadata

import msgspec
import pytest
from packaging.version import Version

from shop._compat.msgspec import field_of, names_a_field, reason


class Line(msgspec.Struct, forbid_unknown_fields=True):
    quantity: int


class Basket(msgspec.Struct, forbid_unknown_fields=True):
    items: list[Line]


def _message(raw: object) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(raw, Basket, strict=True)
    return str(caught.value)


@pytest.mark.parametrize(
    ("raw", "field", "named"),
    [
        # a wrong type: the path names the field
        ({"items": [{"quantity": "2"}]}, "items[0].quantity", False),
        # a missing field: the path names its object, the message the field
        ({"items": [{}]}, "items[0].quantity", True),
        # an unknown field, likewise
        ({"items": [{"quantity": 1, "colour": "red"}]}, "items[0].colour", True),
        # a missing top-level field: no path at all
        ({}, "items", True),
        # the body itself has the wrong shape: no field
        ([], None, False),
    ],
)
def test_the_field_is_read_from_msgspecs_message(
    raw: object, field: str | None, named: bool
) -> None:
    message = _message(raw)

    assert field_of(message) == field, message
    assert names_a_field(message) is named, message


def test_a_known_parent_path_is_used_when_the_message_has_none() -> None:
    assert field_of(_message({}), "data") == "data.items"


def test_the_reason_is_the_message_without_its_location() -> None:
    assert reason(_message({"items": [{"quantity": "2"}]})) == "Expected `int`, got `str`"


def test_msgspec_is_within_the_version_range_the_messages_were_checked_with() -> None:
    assert Version("0.19") <= Version(metadata.version("msgspec")) < Version("0.24")
