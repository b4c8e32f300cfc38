"""GET /api/products: DRF's list envelope, page numbers, links and bounded counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shop.app import create_app
from tests.conftest import make_settings, memcached_url
from tests.support.asgi import serve_in_process
from tests.support.factories import make_product
from tests.support.servers import Memcached

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = "http://localhost/api/products/"


async def make_catalogue(db: AsyncSession, count: int, category: str = "books") -> None:
    for i in range(count):
        await make_product(
            db, name=f"p{i:02}", category=category, created_at=T0 - timedelta(minutes=i)
        )


async def get(client: httpx.AsyncClient, headers: dict[str, str], query: str) -> httpx.Response:
    return await client.get(f"/api/products/?{query}", headers=headers)


@pytest.mark.parametrize(
    ("query", "first", "shown", "next_", "previous"),
    [
        # no parameter: page 1 of 20, as the Django app answered
        ("", "p00", 20, f"{BASE}?page=2", None),
        ("page=1", "p00", 20, f"{BASE}?page=2", None),
        # page 2 links back to the list without a page number (DRF's rule)
        ("page=2", "p20", 20, f"{BASE}?page=3", BASE),
        # the last, partial page has no next
        ("page=3", "p40", 5, None, f"{BASE}?page=2"),
        # filters are kept in the links
        (
            "category=books&page=2",
            "p20",
            20,
            f"{BASE}?category=books&page=3",
            f"{BASE}?category=books",
        ),
        # limit/offset (our extension): the links carry limit and offset
        ("limit=10&offset=10", "p10", 10, f"{BASE}?limit=10&offset=20", f"{BASE}?limit=10"),
        (
            "limit=10&offset=25",
            "p25",
            10,
            f"{BASE}?limit=10&offset=35",
            f"{BASE}?limit=10&offset=15",
        ),
        ("limit=10", "p00", 10, f"{BASE}?limit=10&offset=10", None),
        ("offset=40", "p40", 5, None, f"{BASE}?limit=20&offset=20"),
        # with page, limit is the page size
        ("page=2&limit=15", "p15", 15, f"{BASE}?limit=15&page=3", f"{BASE}?limit=15"),
    ],
)
async def test_pages_and_their_links(
    client: httpx.AsyncClient,
    db: AsyncSession,
    customer: dict[str, str],
    query: str,
    first: str,
    shown: int,
    next_: str | None,
    previous: str | None,
) -> None:
    await make_catalogue(db, 45)

    body = (await get(client, customer, query)).json()

    assert list(body) == ["count", "next", "previous", "results"]
    assert body["count"] == 45
    assert (body["results"][0]["name"], len(body["results"])) == (first, shown)
    assert (body["next"], body["previous"]) == (next_, previous)


async def test_a_page_past_the_end_is_404_and_an_empty_first_page_is_not(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str]
) -> None:
    await make_catalogue(db, 25)

    past = await get(client, customer, "page=3")
    again = await get(client, customer, "page=3")  # the same answer once cached
    empty = await get(client, customer, "category=toys&page=1")
    beyond_offset = await get(client, customer, "offset=100")

    for response in (past, again):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    assert empty.json() == {"count": 0, "next": None, "previous": None, "results": []}
    # an offset past the end is an empty page, as DRF's LimitOffsetPagination answers
    assert beyond_offset.status_code == 200 and beyond_offset.json()["results"] == []
    assert beyond_offset.json()["count"] == 25


async def test_links_name_the_host_of_each_request_even_from_the_cache(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str]
) -> None:
    await make_catalogue(db, 25)

    one = await get(client, {**customer, "Host": "one.example"}, "page=1")
    two = await get(client, {**customer, "Host": "two.example"}, "page=1")

    assert one.json()["next"] == "http://one.example/api/products/?page=2"
    assert two.json()["next"] == "http://two.example/api/products/?page=2"
    assert one.json()["results"] == two.json()["results"]


async def test_a_repeated_parameter_cannot_be_answered_from_another_querys_entry(
    client: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str], staff: dict[str, str]
) -> None:
    # Issue 14: the key sorted repeated values while the handler read the last one,
    # so ?ordering=-price&ordering=price could be answered with price's pages.
    await make_product(db, name="cheap", price=Decimal("1.00"))
    await make_product(db, name="dear", price=Decimal("9.00"))

    first = await get(client, customer, "ordering=-price&ordering=price")
    second = await get(client, customer, "ordering=price&ordering=-price")
    descending = await get(client, customer, "ordering=-price")

    for response in (first, second):
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["ordering"]
    assert [p["name"] for p in descending.json()["results"]] == ["dear", "cheap"]


@pytest.fixture
async def small_threshold(
    postgres_url: str, memcached: Memcached | str
) -> AsyncIterator[httpx.AsyncClient]:
    """An instance that counts exactly only up to 5 matches."""
    settings = make_settings(postgres_url, memcached_url(memcached), LIST_EXACT_COUNT_MAX="5")
    async with serve_in_process(create_app(settings)) as other:
        yield other


async def test_count_is_exact_up_to_the_threshold_and_a_marked_estimate_beyond(
    small_threshold: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str]
) -> None:
    await make_catalogue(db, 12, category="books")
    await make_catalogue(db, 5, category="toys")

    many = (await get(small_threshold, customer, "category=books&limit=2")).json()
    few = (await get(small_threshold, customer, "category=toys&limit=2")).json()
    last_page = (await get(small_threshold, customer, "category=books&offset=10")).json()

    assert many["count_is_estimate"] is True
    assert many["count"] > 5  # at least the rows it saw; PostgreSQL's estimate beyond
    assert many["next"] is not None
    assert few["count"] == 5 and "count_is_estimate" not in few
    # the last page tells the exact count by itself
    assert last_page["count"] == 12 and "count_is_estimate" not in last_page


async def test_every_estimated_count_of_one_query_shape_is_answered(
    small_threshold: httpx.AsyncClient, db: AsyncSession, customer: dict[str, str]
) -> None:
    # The second estimate of a shape runs the statement compiled for the first.
    await make_catalogue(db, 8, category="books")
    await make_catalogue(db, 9, category="toys")

    for category in ("books", "toys"):
        response = await get(small_threshold, customer, f"category={category}&limit=2")
        assert response.status_code == 200
        assert response.json()["count_is_estimate"] is True
