"""What `shop._compat.litestar` relies on in Litestar is still there and still needed.

A failure after a Litestar upgrade says which assumption broke: read the compat
module's docstring, adapt it (or drop a workaround the library no longer needs),
then move the version bound in pyproject.toml.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any

from litestar import Litestar, get, patch
from litestar.params import FromPath
from litestar.testing import TestClient
from packaging.version import Version

from shop._compat.litestar import route_methods, wrap_asgi_handler


@get("/things/{thing_id:int}", sync_to_thread=False)
def read_thing(thing_id: FromPath[int]) -> dict[str, int]:
    return {"id": thing_id}


@patch("/things/{thing_id:int}", sync_to_thread=False)
def change_thing(thing_id: FromPath[int]) -> dict[str, int]:
    return {"id": thing_id}


def test_every_http_request_goes_through_the_instance_asgi_handler() -> None:
    # Litestar.__call__ sends requests to self.asgi_handler, which __init__ assigns.
    assert "self.asgi_handler(" in inspect.getsource(Litestar.__call__)
    assert "self.asgi_handler = " in inspect.getsource(Litestar.__init__)


def test_a_wrapped_handler_sees_requests_that_match_no_route() -> None:
    seen: list[str] = []
    app = Litestar([read_thing])

    def outer(handler: Any) -> Any:
        async def wrapper(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["path"])
            await handler(scope, receive, send)

        return wrapper

    wrap_asgi_handler(app, outer)
    with TestClient(app) as client:
        assert client.get("/nowhere").status_code == 404
        assert client.get("/things/3").json() == {"id": 3}

    assert seen == ["/nowhere", "/things/3"]


def test_route_methods_lists_every_method_of_a_path_without_parameter_types() -> None:
    app = Litestar([read_thing, change_thing])

    assert route_methods(app)["/things/{thing_id}"] >= {"GET", "PATCH", "OPTIONS"}


def test_litestar_still_answers_options_from_the_first_handler_only() -> None:
    # The bug shop.ops.allow works around. When this fails, Litestar lists every
    # method itself: remove AllowHeaderMiddleware and route_methods.
    with TestClient(Litestar([read_thing, change_thing])) as client:
        allow = client.options("/things/1").headers["allow"]

    assert "PATCH" not in allow


def test_litestar_is_within_the_version_range_the_compat_module_was_checked_with() -> None:
    assert Version("2.18") <= Version(metadata.version("litestar")) < Version("2.26")
