"""K1: every staff console page, timed one request at a time on the benchmark's data.

The console is not a throughput path (a handful of staff), so this scenario
does not load it with wrk: it signs in through the login form like a browser
(CSRF cookie and field, session cookie), then requests each page sequentially
on one keep-alive connection to loopback, so each figure is the server's time
for the page plus a loopback round trip (a fraction of a millisecond). The
target (issue 15) is under 50 ms per page.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench.load import Result
from bench.seed import Fixture
from bench.servers import STAFF

__all__ = ["TARGET_MS", "checks", "run"]

TARGET_MS = 50.0
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _pages(fx: Fixture) -> list[tuple[str, str]]:
    customer = fx.customers[0]
    order_id = fx.orders[0][1] if fx.orders else 1
    return [
        ("dashboard", "/admin/"),
        ("products", "/admin/products/"),
        ("products search", "/admin/products/?search=1&ordering=price"),
        ("product edit", f"/admin/products/{fx.product_ids[0]}"),
        ("product new", "/admin/products/new"),
        ("orders", "/admin/orders/"),
        ("orders search", f"/admin/orders/?search={customer.email.split('@')[0]}"),
        ("order detail", f"/admin/orders/{order_id}"),
        ("order cancel", f"/admin/orders/{order_id}/cancel"),
        ("users", "/admin/users/"),
        ("users search", "/admin/users/?search=bench&staff=false"),
        ("user detail", f"/admin/users/{customer.user_id}"),
        ("webhooks", "/admin/webhooks/"),
        ("jobs", "/admin/jobs/"),
        ("login page", "/admin/login"),
    ]


def _sign_in(client: httpx.Client) -> None:
    page = client.get("/admin/login")
    token = _CSRF.search(page.text)
    assert token, "the login page has no CSRF field"
    email, _, password = STAFF
    response = client.post(
        "/admin/login",
        data={"email": email, "password": password, "_csrf_token": token.group(1)},
    )
    assert response.status_code == 303, f"console sign-in failed: {response.status_code}"


def run(base_url: str, fx: Fixture, *, requests: int) -> list[Result]:
    results: list[Result] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        _sign_in(client)
        for label, path in _pages(fx):
            for _ in range(3):  # warm the connection and the code path
                client.get(path)
            timings: list[float] = []
            statuses: list[int] = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(path)
                timings.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)
            timings.sort()
            p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
            results.append(
                Result(
                    name=f"K1 {label}",
                    rps=1000 / statistics.fmean(timings),
                    p50_ms=statistics.median(timings),
                    p99_ms=p99,
                    requests=requests,
                    ok=sum(200 <= s < 300 for s in statuses),
                    non2xx=sum(not 200 <= s < 300 for s in statuses),
                    s5xx=sum(s >= 500 for s in statuses),
                    socket_errors=0,
                    extra={"path": path, "max_ms": round(timings[-1], 2)},
                )
            )
    return results


def checks(results: Sequence[Result]) -> list[dict[str, Any]]:
    """One check per console page: the median time is under the target and every answer a 2xx."""
    return [
        {
            "check": f"{r.name} p50 ms",
            "value": round(r.p50_ms, 2),
            "target": f"< {TARGET_MS:g}, all 2xx",
            "met": r.p50_ms < TARGET_MS and r.non2xx == 0,
        }
        for r in results
        if r.name.startswith("K1 ")
    ]
