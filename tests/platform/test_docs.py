"""The API docs: an OpenAPI 3.1 document, and Swagger UI / ReDoc pages that render with no internet.

The pages are opened in a real headless Chromium (Debian's package, driven by
Playwright) against the app served by uvicorn on 127.0.0.1; any request the
page makes to another host fails the test. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.live import LiveServer
from tests.support.servers import unavailable

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


async def test_schema_is_openapi_31_json(client):
    response = await client.get("/api/schema/")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert schema["info"]["title"] == "shop"
    assert "BearerAuth" in schema["components"]["securitySchemes"]
    assert "/health/ready" in schema["paths"]


async def test_schema_is_served_without_trailing_slash_and_without_token(client):
    response = await client.get("/api/schema")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    assert response.json()["openapi"].startswith("3.1")


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
async def test_docs_pages_reference_only_local_assets(client, page):
    response = await client.get(page)

    assert response.status_code == 200
    assert "http://" not in response.text and "https://" not in response.text
    for asset in (
        ("swagger-ui-bundle.js", "swagger-ui.css") if "docs" in page else ("redoc.standalone.js",)
    ):
        path = next(
            part.split('"')[0]
            for part in response.text.split('"/api/docs/assets')[1:]
            if asset in part
        )
        assert (await client.get("/api/docs/assets" + path)).status_code == 200


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    return path or ""


@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        ("/api/docs/", ".opblock-summary"),  # Swagger UI lists operations
        ("/api/redoc/", "[data-section-id^='tag/'], li[data-item-id]"),  # ReDoc builds its menu
    ],
)
async def test_docs_pages_render_offline_in_chromium(
    live_server: LiveServer, chromium, page, rendered
):
    from playwright.async_api import async_playwright

    outside: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})

            async def guard(route):
                if route.request.url.startswith(live_server.url):
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await context.route("**/*", guard)
            tab = await context.new_page()
            await tab.goto(live_server.url + page)
            await tab.wait_for_selector(rendered, timeout=30_000)
            count = await tab.locator(rendered).count()
            ARTIFACTS.mkdir(exist_ok=True)
            await tab.screenshot(
                path=str(ARTIFACTS / (page.strip("/").replace("/", "-") + ".png")), full_page=False
            )
        finally:
            await browser.close()

    assert count >= 1
    assert outside == [], f"the page reached outside the server: {outside}"


@pytest.mark.parametrize("path", ["/api/", "/api"])
async def test_api_root_is_a_json_index_of_docs_schema_and_resources(client, path):
    response = await client.get(path)

    assert response.status_code == 200
    index = response.json()
    assert index["docs"].endswith("/api/docs/") and index["schema"].endswith("/api/schema/")
    for name in ("products", "orders", "admin_orders", "profile"):
        assert index["resources"][name].startswith("http")
    followed = await client.get(index["schema"])
    assert followed.status_code == 200


async def test_api_index_and_package_version_are_in_the_schema(client):
    from shop import __version__

    schema = (await client.get("/api/schema/")).json()

    assert schema["info"]["version"] == __version__ == "0.1.0"
    assert "/api" in schema["paths"] or "/api/" in schema["paths"]


def test_docs_assets_are_vendored_with_their_licences_and_no_django_is_needed():
    import tomllib

    import shop.ops.docs as docs

    root = Path(__file__).resolve().parents[2]
    dependencies = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    assets = docs.assets_dir()

    assert not [d for d in dependencies if "django" in d.lower() or "sidecar" in d.lower()]
    assert assets.is_relative_to(Path(docs.__file__).parent)
    for package in ("swagger-ui-dist", "redoc"):
        assert (assets / package / "LICENSE").read_text().strip()
        assert (assets / package / "VERSION").read_text().startswith(package)
