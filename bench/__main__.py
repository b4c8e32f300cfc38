"""`nox -s bench` / `python -m bench`: start the shop the production way, seed it, load it, report.

Order of a run: services (bench/servers.py) → seed through the API
(bench/seed.py) → per round, every scenario with wrk or pgbench for a fixed
time (bench/load.py), the database checks after the order scenarios
(bench/dbcheck.py) and the workers' memory → the table, the ratios against
the targets and a JSON file (bench/report.py). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench import console, dbcheck, jobs_drain, misses, report, scale
from bench.checkout_sql import write_checkout_script
from bench.load import Result, run_pgbench, run_wrk
from bench.mixed import run_m1
from bench.profile import cpu_ms, sampling
from bench.seed import PASSWORD, Customer, Fixture, seed
from bench.servers import SECRET_KEY, Services, require_tools, services
from shop.accounts.security import encode_token
from shop.settings import TokenSettings

UNITS_PER_ORDER = {"S4": 2, "S5": 1}
"""Units each benchmark order takes (see bench/order_create.lua)."""
READS = [("S1", "products_list.lua"), ("S2", "product_detail.lua"), ("S3", "order_detail.lua")]

_t0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 2 s per scenario, a small catalogue"
    )
    p.add_argument("--duration", type=float, help="seconds of load per scenario (default 10)")
    p.add_argument("--warmup", type=float, help="unrecorded load before each read scenario (2)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--repeat", type=int, default=1, help="rounds of every scenario (3 for the memory check)"
    )
    p.add_argument("--api-workers", type=int, default=2, help="uvicorn workers of `shop run`")
    p.add_argument("--worker-concurrency", type=int, default=2, help="concurrency of `shop worker`")
    p.add_argument(
        "--only", default="", help="comma-separated scenarios, e.g. C0,S1 (default: all)"
    )
    p.add_argument(
        "--commit",
        metavar="REV",
        help="benchmark this commit (exported with git archive) instead of the working tree",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for the shop processes, e.g. CACHE_TIMEOUT=0.5 (repeatable)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (logs, database); with --scale, keep the million-row "
        "cluster in --scale-dir and reuse it on the next --scale --keep run",
    )
    p.add_argument(
        "--scale",
        action="store_true",
        help="a million products, 100,000 users, a million orders built in PostgreSQL "
        "(bench/scale.py); runs the cache-miss scenarios (P-*, O-*), S1 and M1 on it",
    )
    p.add_argument(
        "--scale-dir", type=Path, default=Path(tempfile.gettempdir()) / "shop-bench-scale"
    )
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the API workers with py-spy during each HTTP scenario, stacks into DIR",
    )
    args = p.parse_args()
    quick = args.quick
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.warmup = args.warmup or (1.0 if quick else 2.0)
    return args


def export(commit: str, workdir: Path) -> Path:
    """``src/`` and ``db/`` of ``commit``, so a run measures committed code, not a busy tree."""
    tree = workdir / "source"
    tree.mkdir()
    git = ["git", "archive", commit, "src", "db"]
    archive = subprocess.run(git, capture_output=True, check=True).stdout  # noqa: S603
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)  # noqa: S603, S607
    return tree


def write_data_file(path: Path, fx: Fixture, extra: list[str] | None = None) -> None:
    lines = [f"password {PASSWORD}", f"hot {fx.hot_product_id}", *(extra or [])]
    lines += [f"customer {c.email} {c.access}" for c in fx.customers]
    lines += [f"product {i}" for i in fx.product_ids]
    lines += [f"order {token} {order_id}" for token, order_id in fx.orders]
    path.write_text("\n".join(lines) + "\n")


def settle(base_url: str, limit: float = 120.0) -> None:
    """Wait until the API answers /health/live quickly again.

    wrk abandons requests at its deadline but the server still works through
    them; after S6 that is a queue of Argon2 logins, which would otherwise be
    measured as part of the next round's C0.
    """
    deadline = time.monotonic() + limit
    fast = 0
    while fast < 3 and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            httpx.get(base_url + "/health/live", timeout=5)
            fast = fast + 1 if time.monotonic() - started < 0.05 else 0
        except httpx.HTTPError:
            fast = 0
        time.sleep(0.2)


def wanted_set(args: argparse.Namespace) -> set[str]:
    return set(filter(None, args.only.upper().split(",")))


def run_round(svc: Services, fx: Fixture, data: Path, args: argparse.Namespace) -> list[Result]:
    wanted = set(filter(None, args.only.upper().split(",")))

    def on(name: str) -> bool:
        return not wanted or name in wanted

    wrk = partial(run_wrk, base_url=svc.base_url, data_file=data, connections=args.connections)
    pgbench = partial(
        run_pgbench,
        database_url=svc.database_url,
        workdir=svc.workdir,
        duration=args.duration,
        clients=args.connections,
    )
    users = sorted(c.user_id for c in fx.customers)
    results: list[Result] = []

    workers = sorted(report.api_worker_rss(svc.api_pid))

    def measure(name: str, script: str, *script_args: str) -> Result:
        with sampling(args.profile, name, workers, args.duration):
            return wrk(name, script, *script_args, duration=args.duration)

    def record(result: Result) -> Result:
        results.append(result)
        log(
            f"{result.name}: {result.rps:.0f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"non-2xx {result.non2xx}, 5xx {result.s5xx}, socket errors {result.socket_errors}"
        )
        return result

    if on("C0"):
        record(measure("C0", "live.lua"))
    for name, script in READS:
        if on(name):
            wrk(f"{name}-warmup", script, duration=args.warmup)
            record(measure(name, script))
    for name, mode, ceiling, sql, defines in [
        (
            "S4",
            "spread",
            "D4",
            write_checkout_script("spread"),
            {"pmin": fx.product_ids[0], "pmax": fx.product_ids[-1]},
        ),
        ("S5", "hot", "D5", write_checkout_script("hot"), {"hot": fx.hot_product_id}),
    ]:
        if on(name):
            before = dbcheck.snapshot(svc.database_url)
            result = record(measure(name, "order_create.lua", mode))
            problems = dbcheck.verify(
                svc.database_url,
                before,
                result.ok,
                UNITS_PER_ORDER[name],
                in_flight=args.connections,
            )
            result.extra["db_check"] = problems or "ok"
            log(f"{name} database check: {'; '.join(problems) if problems else 'ok'}")
        if on(ceiling):
            record(pgbench(ceiling, sql, defines={**defines, "umin": users[0], "umax": users[-1]}))
    if on("S6"):
        record(measure("S6", "login.lua"))
    if on("K1"):  # the staff console's pages, one request at a time (bench/console.py)
        settle(svc.base_url)
        for result in console.run(svc.base_url, fx, requests=20 if args.quick else 100):
            record(result)
    if on("M1"):
        s1 = next((r.rps for r in results if r.name == "S1"), None)
        settle(svc.base_url)
        for part in m1(svc, fx, data, args, s1):
            record(part)
    return results


def m1(
    svc: Services, fx: Fixture, data: Path, args: argparse.Namespace, s1: float | None
) -> list[Result]:
    parts = run_m1(
        name="M1",
        base_url=svc.base_url,
        database_url=svc.database_url,
        probe_token=fx.customers[-1].access,
        product_ids=fx.product_ids,
        wrk=partial(run_wrk, base_url=svc.base_url, data_file=data),
        duration=args.duration,
        s1_rps=s1,
    )
    summary = parts[0].extra
    log(
        "M1: list hit ratio {list_hit_ratio:.3f}, reads {read_rps:.0f}/s (x{reads_vs_s1} of S1), "
        "read p99 {read_p99_ms:.1f} ms, orders {orders_per_s:.0f}/s, freshness violations "
        "{freshness_violations} of {freshness_reads} reads, 5xx {s5xx}".format(**summary)
    )
    return parts


def scale_fixture(svc: Services, workdir: Path) -> tuple[Fixture, list[str], int, int]:
    """Customers with tokens minted here (no logins: 100,000 users), sampled products,
    the big customer's orders; extra data-file lines for bench/miss.lua."""
    url = svc.database_url
    tokens = TokenSettings(secret_key=SECRET_KEY, access_minutes=600)

    def token(user_id: int) -> str:
        return encode_token(tokens, user_id, "access")[0]

    big = scale.big_customer(url)
    users = scale.sample(url, "SELECT id FROM users WHERE NOT is_staff ORDER BY random() LIMIT 49")
    customers = [Customer(u, f"user{u}", token(u)) for u in [big, *users]]
    products = scale.sample(
        url, "SELECT id FROM products WHERE NOT archived AND stock > 0 ORDER BY random() LIMIT 2000"
    )
    staff = scale.sample(url, "SELECT min(id) FROM users WHERE is_staff")[0]
    orders = scale.sample(
        url,
        f"SELECT id FROM orders WHERE user_id = {big} ORDER BY random() LIMIT 300",  # noqa: S608
    )
    fx = Fixture(
        customers, sorted(products), products[0], [(customers[0].access, o) for o in orders]
    )
    extra = [f"staff {token(staff)}", f"big {token(big)}", *(f"bigorder {o}" for o in orders)]
    return fx, extra, big, orders[0]


def run_scale_round(
    svc: Services, fx: Fixture, data: Path, args: argparse.Namespace, pgdata: Path
) -> list[Result]:
    results: list[Result] = []
    miss = partial(run_wrk, base_url=svc.miss_url, data_file=data, connections=16)
    assert svc.miss_api_pid is not None
    workers = sorted(report.api_worker_rss(svc.miss_api_pid))
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])

    def used() -> tuple[dict[int, float], dict[int, float]]:
        return cpu_ms(workers), cpu_ms([postmaster, *report.children(postmaster)])

    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(ms - before.get(pid, 0.0) for pid, ms in after.items())

    # A fresh process configures its mappers and compiles its statements on its first
    # requests: not part of what a miss costs.
    miss("miss-warmup", "miss.lua", misses.SCENARIOS[0][1], "any", duration=args.warmup)
    for name, path, who in misses.SCENARIOS:
        if args.only and name.upper() not in args.only.upper().split(","):
            continue
        api_before, pg_before = used()
        with sampling(args.profile, name, workers, args.duration):
            result = miss(name, "miss.lua", path, who, duration=args.duration)
        api_after, pg_after = used()
        requests = max(result.requests, 1)
        # CPU per request, less noise-sensitive than latency on a shared machine.
        result.extra["api_cpu_ms"] = round(spent(api_before, api_after) / requests, 2)
        result.extra["pg_cpu_ms"] = round(spent(pg_before, pg_after) / requests, 2)
        results.append(result)
        log(
            f"{name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms ({'ok' if result.p99_ms <= 50 else 'ABOVE 50 ms'}), "
            f"non-2xx {result.non2xx}, 5xx {result.s5xx}; CPU per request: API "
            f"{result.extra['api_cpu_ms']} ms, PostgreSQL {result.extra['pg_cpu_ms']} ms"
        )
    wanted = set(filter(None, args.only.upper().split(",")))
    s1_rps = None
    if not wanted or "S1" in wanted:
        wrk = partial(run_wrk, base_url=svc.base_url, data_file=data, connections=args.connections)
        wrk("S1-warmup", "products_list.lua", duration=args.warmup)
        s1 = wrk("S1", "products_list.lua", duration=args.duration)
        results.append(s1)
        s1_rps = s1.rps
        log(f"S1: {s1.rps:.0f} req/s, p99 {s1.p99_ms:.2f} ms")
    if not wanted or "M1" in wanted:
        results += m1(svc, fx, data, args, s1_rps)
    return results


def main() -> None:
    args = parse_args()
    if args.only.strip().lower() == "import":  # `shop import django` (bench/django_import.py)
        from bench import django_import

        django_import.run(quick=args.quick, keep=args.keep)
        return
    require_tools()
    workdir = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    log(f"work directory {workdir} (logs of every process)")
    payload: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "rounds": []}
    ok = False
    try:
        source = export(args.commit, workdir) if args.commit else None
        payload["commit"] = args.commit or "working tree"
        extra_env = dict(item.split("=", 1) for item in args.env)
        payload["env"] = extra_env
        pgdata = None
        if args.scale:
            pgdata = args.scale_dir.resolve() if args.keep else workdir / "pgdata"
        with services(
            workdir,
            args.api_workers,
            args.worker_concurrency,
            source,
            extra_env,
            pgdata=pgdata,
            miss_api=args.scale,
        ) as svc:
            log(
                f"shop at {svc.base_url} (pid {svc.api_pid}), "
                f"PostgreSQL :{svc.pg_port}, memcached :{svc.mc_port}"
            )
            data = workdir / "data.txt"
            if args.scale:
                if svc.reused and scale.is_built(svc.database_url):
                    log("reusing the million-row data set (--keep)")
                else:
                    log("building the million-row data set in PostgreSQL ...")
                    seconds = scale.build(svc.database_url, workdir)
                    payload["scale_build_seconds"] = round(seconds, 1)
                    log(f"built in {seconds:.0f} s")
                fx, extra, big, an_order = scale_fixture(svc, workdir)
                write_data_file(data, fx, extra)
                plans = workdir / "explain.md"
                scans = misses.explain(svc.database_url, big, an_order, 1_000, plans)
                payload["explain_seq_scans"] = scans
                log(
                    f"EXPLAIN (ANALYZE, BUFFERS) of each query in {plans}; seq scans: {scans or 'none'}"
                )
            else:
                sizes = (200, 10, 50) if args.quick else (1000, 50, 300)
                fx = seed(svc.base_url, products=sizes[0], users=sizes[1], orders=sizes[2])
                log(
                    f"seeded {len(fx.product_ids) + 1} products, "
                    f"{len(fx.customers)} customers, {len(fx.orders)} orders"
                )
                write_data_file(data, fx)
            for n in range(1, args.repeat + 1):
                settle(svc.base_url)
                if args.scale:
                    assert pgdata is not None
                    results = run_scale_round(svc, fx, data, args, pgdata)
                else:
                    results = run_round(svc, fx, data, args)
                rss = report.api_worker_rss(svc.api_pid)
                checks = report.ratios(results) + console.checks(results)
                queue = dbcheck.job_queue(svc.database_url)
                payload["rounds"].append(
                    {
                        "results": [r.as_dict() for r in results],
                        "checks": checks,
                        "api_worker_rss_mib": rss,
                        "jobs": queue,
                    }
                )
                report.print_table(
                    results,
                    f"round {n} of {args.repeat}: {args.duration:g} s per scenario, "
                    f"{args.connections} connections, {args.api_workers} API workers",
                )
                report.print_ratios(checks)
                print(
                    f"  API worker RSS after round {n}: "
                    + ", ".join(f"pid {pid} {mib} MiB" for pid, mib in sorted(rss.items()))
                )
                print(
                    f"  jobs after round {n} (the worker runs niced, see bench/servers.py): "
                    + ", ".join(f"{status} {count}" for status, count in queue.items())
                )
            if not wanted_set(args) or "J1" in wanted_set(args):
                payload["J1"] = jobs_drain.run_j1(
                    svc.database_url, svc.env, workdir, quick=args.quick
                )
            payload["table_sizes"] = jobs_drain.print_table_sizes(
                svc.database_url, "of the bench database after the run"
            )
        path = report.write_json(args.out, payload)
        log(f"results written to {path}")
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")


if __name__ == "__main__":
    main()
