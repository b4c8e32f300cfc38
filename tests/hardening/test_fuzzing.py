"""Schema-driven fuzzing: schemathesis against `shop run`, as a customer and as staff.

Schemathesis reads /api/schema/ from the running API and sends generated
requests (valid and invalid) to every operation in its examples, coverage,
fuzzing and stateful phases (the stateful phase follows the links it infers,
e.g. POST /api/orders → GET /api/orders/{order_id}). Every response must not be
a 5xx; must match the documented status codes, content types, headers and body
schema; must not accept what the schema forbids or skip authentication; and
(our own check, fuzz_hooks.py) must be problem+json when it is an error.

Two checks are left out on purpose:
* positive_data_acceptance: business rules reject schema-valid requests by
  design (a common password, a product that does not exist, too little stock);
* ensure_resource_availability: an order's invoice is 404 until the worker
  has rendered it, as the spec says.

The run is bounded by examples per operation and by time (FUZZ_MAX_EXAMPLES,
FUZZ_MAX_TIME per role) so CI spends about a minute and a half here; the
request count is printed and asserted. KNOWN lists failures in other
domains that are reported but not yet fixed; a new failure fails the test, and
a known one that stops occurring should be deleted from the list.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import make_settings
from tests.support.factories import access_token, make_product, make_user

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "25")
MAX_TIME = int(os.environ.get("FUZZ_MAX_TIME", "40"))

KNOWN: dict[tuple[str, str], str] = {
    # (operation, check): the finding, reported to the domain's owner (issue 7 closing note).
    # Empty: the staff guard's OPTIONS 500 and the numeric created_from/created_to were fixed.
}


def run_schemathesis(url: str, token: str, report: Path) -> str:
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.hardening.fuzz_hooks",
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/api/schema/",
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance,ensure_resource_availability",
        "--max-examples",
        MAX_EXAMPLES,
        "--max-time",
        str(MAX_TIME),
        "--workers",
        "2",
        "--seed",
        os.environ.get("FUZZ_SEED", "20261127"),
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--request-timeout",
        "20",
        "--warnings",
        "off",
    ]
    result = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=MAX_TIME * 3 + 120
    )
    return result.stdout + result.stderr


def summarise(report: Path) -> tuple[int, dict[tuple[str, str], str]]:
    """Requests sent, and the failed checks as {(operation, check): the request that failed}."""
    requests = 0
    failures: dict[tuple[str, str], str] = {}
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder", {})
        requests += len(recorder.get("interactions", {}))
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                case = recorder["cases"][case_id]["value"]
                if _boolean_on_the_wire(check, case):
                    continue
                operation = f"{case['method']} {case['path']}"
                response = (recorder["interactions"].get(case_id) or {}).get("response") or {}
                seen = f"-> {response.get('status_code')}: {str(response.get('content'))[:200]}"
                failures.setdefault(
                    (operation, check["name"]), f"{json.dumps(case, default=str)[:600]} {seen}"
                )
    return requests, failures


_TYPE_MUTATION = re.compile(r"parameter `(\w+)` in query - \1: Incorrect type")


def _boolean_on_the_wire(check: dict[str, Any], case: dict[str, Any]) -> bool:
    """Schemathesis's false positive: a boolean query parameter "mutated" to the
    string "true" or "false" is exactly how a boolean is sent in a query string.
    (Its own guard covers numeric parameters only.) Any other value still counts."""
    if check.get("name") != "negative_data_rejection":
        return False
    message = ((check.get("failure_info") or {}).get("failure") or {}).get("message") or ""
    mutated = _TYPE_MUTATION.findall(message)
    query = case.get("query") or {}
    return bool(mutated) and all(query.get(name) in ("true", "false") for name in mutated)


async def test_schemathesis_finds_nothing(db, processes, env, tmp_path):
    staff = await make_user(db, is_staff=True)
    customer = await make_user(db)
    await make_product(db, stock=100_000, price=10)  # something to order
    # No throttling noise: the limits have their own tests (test_edge.py).
    api = processes.api({**env, "REGISTER_PER_MINUTE": "100000", "LOGIN_ATTEMPTS": "100000"})
    tokens_settings = make_settings(env["DATABASE_URL"], None)
    total = 0
    found: dict[tuple[str, str], str] = {}
    for role, user in (("customer", customer), ("staff", staff)):
        report = tmp_path / f"{role}.ndjson"
        output = run_schemathesis(api.url, access_token(tokens_settings, user), report)
        requests, failures = summarise(report)
        print(f"schemathesis as {role}: {requests} requests, {len(failures)} failing checks")
        total += requests
        found.update(failures)
        assert requests > 0, output[-3000:]

    print(f"schemathesis: {total} requests in total")
    for (operation, check), case in sorted(found.items()):
        print(f"  {'known' if (operation, check) in KNOWN else 'NEW'}: {operation} {check}: {case}")
    assert total >= 2000  # "enough examples to matter"
    new = {key: case for key, case in found.items() if key not in KNOWN}
    assert not new, "schemathesis found:\n" + "\n".join(
        f"{op} [{check}] {case}" for (op, check), case in new.items()
    )
