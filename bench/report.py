"""The table, the ratios against the issue's targets, worker memory, and the JSON file."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.load import Result

__all__ = ["api_worker_rss", "children", "print_ratios", "print_table", "ratios", "write_json"]

TARGETS: list[tuple[str, str, str, float]] = [
    # (label, numerator, denominator, minimum ratio)
    ("S1 / C0 (cached list, auth included)", "S1", "C0", 0.6),
    ("S2 / C0 (product detail)", "S2", "C0", 0.4),
    ("S3 / C0 (cached order detail)", "S3", "C0", 0.5),
    ("S4 / D4 (checkout, spread)", "S4", "D4", 0.5),
    ("S5 / D5 (checkout, hot product)", "S5", "D5", 0.5),
]
P99_OVER_P50_MAX = 10.0


def print_table(results: Sequence[Result], title: str) -> None:
    print(f"\n{title}")
    print(
        f"{'scenario':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'5xx':>6}{'sock err':>9}"
    )
    for r in results:
        print(
            f"{r.name:<10}{r.rps:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.non2xx:>9}{r.s5xx:>6}{r.socket_errors:>9}"
        )


def ratios(results: Sequence[Result]) -> list[dict[str, Any]]:
    by_name = {r.name: r for r in results}
    checks: list[dict[str, Any]] = []
    for label, num, den, minimum in TARGETS:
        if num in by_name and den in by_name and by_name[den].rps:
            value = by_name[num].rps / by_name[den].rps
            checks.append(
                {
                    "check": label,
                    # truncated, not rounded: 0.5996 must not print as a met 0.6
                    "value": math.floor(value * 1000) / 1000,
                    "target": f">= {minimum}",
                    "met": value >= minimum,
                }
            )
    if "S1" in by_name and by_name["S1"].p50_ms:
        value = by_name["S1"].p99_ms / by_name["S1"].p50_ms
        checks.append(
            {
                "check": "S1 p99 / p50",
                "value": round(value, 2),
                "target": f"< {P99_OVER_P50_MAX:g}",
                "met": value < P99_OVER_P50_MAX,
            }
        )
    bad = [r.name for r in results if r.s5xx or r.socket_errors]
    checks.append(
        {
            "check": "zero 5xx and socket errors",
            "value": ", ".join(bad) or "none",
            "target": "none",
            "met": not bad,
        }
    )
    return checks


def print_ratios(checks: Sequence[dict[str, Any]]) -> None:
    for c in checks:
        print(
            f"  {'ok  ' if c['met'] else 'MISS'} {c['check']:<40} "
            f"{c['value']!s:>8}  (target {c['target']})"
        )


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def api_worker_rss(api_pid: int) -> dict[int, float]:
    """Resident MiB of each uvicorn worker (children of ``shop run`` serving requests)."""
    rss = {}
    for child in children(api_pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        if "resource_tracker" in cmdline:
            continue
        kib = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        rss[child] = round(kib / 1024, 1)
    return rss


def write_json(directory: Path, payload: dict[str, Any]) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
