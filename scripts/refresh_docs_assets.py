"""Refresh the vendored Swagger UI and ReDoc files from the npm registry.

    python scripts/refresh_docs_assets.py                     # the pinned versions below
    python scripts/refresh_docs_assets.py --swagger-ui 5.36.0 --redoc 2.5.5

The docs pages (`shop.ops.docs`) serve these files from
``src/shop/ops/docs_assets/`` so they work offline and the shop needs no
Django app (drf-spectacular-sidecar) for two JavaScript bundles. The script
downloads each package's tarball from registry.npmjs.org, checks it against
the registry's published SHA-512 integrity, and copies only the files the
pages load plus the package's licence. Commit the result; bump the pinned
versions here when you refresh.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import tarfile
import urllib.request
from pathlib import Path

SWAGGER_UI_VERSION = "5.35.0"
REDOC_VERSION = "2.5.4"

TARGET = Path(__file__).resolve().parents[1] / "src" / "shop" / "ops" / "docs_assets"

# npm package -> (folder under TARGET, files kept, relative to the package root)
PACKAGES = {
    "swagger-ui-dist": (
        "swagger-ui-dist",
        [
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
            "swagger-ui.css",
            "favicon-32x32.png",
            "LICENSE",
            "swagger-ui-bundle.js.LICENSE.txt",  # the bundled libraries' licences
            "swagger-ui-standalone-preset.js.LICENSE.txt",
        ],
    ),
    "redoc": (
        "redoc",
        [
            "bundles/redoc.standalone.js",
            "bundles/redoc.standalone.js.LICENSE.txt",
            "bundles/d87bcbdbea8f8f5aa26f.worker.js.LICENSE.txt",  # named in the bundle
            "LICENSE",
        ],
    ),
}


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URLs)
        data: bytes = response.read()
        return data


def refresh(package: str, version: str) -> str:
    folder, wanted = PACKAGES[package]
    meta = json.loads(_fetch(f"https://registry.npmjs.org/{package}/{version}"))
    tarball = _fetch(meta["dist"]["tarball"])
    algorithm, _, expected = meta["dist"]["integrity"].partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{package} {version}: tarball does not match the registry's integrity")
    destination = TARGET / folder
    shutil.rmtree(destination, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in wanted:
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{package} {version}: no {name} in the tarball")
            path = destination / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(member.read())
    (destination / "VERSION").write_text(f"{package} {version} {meta['license']}\n")
    return f"{package} {version} ({meta['license']}) -> {destination}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--swagger-ui", default=SWAGGER_UI_VERSION)
    parser.add_argument("--redoc", default=REDOC_VERSION)
    args = parser.parse_args()
    print(refresh("swagger-ui-dist", args.swagger_ui))
    print(refresh("redoc", args.redoc))


if __name__ == "__main__":
    main()
