"""Load generators: wrk against the API, pgbench against PostgreSQL, both bounded in time.

wrk runs one of the ``bench/*.lua`` scripts; the script's ``done()`` prints a
``BENCH_JSON`` line with percentiles and status classes, parsed here. pgbench
runs the checkout script `bench.checkout_sql` builds from the app's statement, with a per-transaction log, from which the same
percentiles are computed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import HOST, PG_BIN

__all__ = ["Result", "run_pgbench", "run_wrk"]

HERE = Path(__file__).resolve().parent
THREADS = 2
"""Load generator threads; the machine has two cores, shared with the server."""


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    ok: int
    non2xx: int
    s5xx: int
    socket_errors: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_wrk(
    name: str,
    script: str,
    *args: str,
    base_url: str,
    data_file: Path,
    duration: float,
    connections: int,
) -> Result:
    assert base_url.startswith(f"http://{HOST}:"), "load goes to loopback only"
    cmd = [
        "wrk",
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(HERE / script),
        base_url,
        "--",
        str(data_file),
        *args,
    ]
    env = {**os.environ, "BENCH_LUA_DIR": str(HERE)}
    out = subprocess.run(  # noqa: S603
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(
            f"bench: wrk failed for {name} ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    r = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = r["duration_us"] / 1e6
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return Result(
        name=name,
        rps=r["requests"] / seconds,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        requests=r["requests"],
        ok=r["s2xx"],
        non2xx=r["requests"] - r["s2xx"],
        s5xx=r["s5xx"],
        socket_errors=socket_errors,
        extra={
            "p90_ms": r["p90_us"] / 1000,
            "max_ms": r["max_us"] / 1000,
            "s4xx": r["s4xx"],
            "s3xx": r["s3xx"],
        },
    )


def run_pgbench(
    name: str,
    script: str,
    database_url: str,
    workdir: Path,
    defines: dict[str, int],
    *,
    duration: float,
    clients: int,
) -> Result:
    assert PG_BIN is not None
    assert f"@{HOST}:" in database_url, "load goes to loopback only"
    logdir = workdir / f"pgbench-{name}"
    logdir.mkdir(exist_ok=True)
    cmd = [
        str(PG_BIN / "pgbench"),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(THREADS),
        "-T",
        str(max(1, round(duration))),
        "-f",
        str(HERE / script),
        "-l",
        "--log-prefix",
        str(logdir / "tx"),
        *(f"-D{k}={v}" for k, v in defines.items()),
        database_url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)  # noqa: S603
    if out.returncode != 0:
        raise SystemExit(
            f"bench: pgbench failed for {name} ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    latencies_us: list[int] = []
    for log in logdir.glob("tx*"):
        for line in log.read_text().splitlines():
            # client_id transaction_no time script_no time_epoch time_us
            parts = line.split()
            latencies_us.append(int(parts[2]))
        log.unlink()
    done = len(latencies_us)
    tps = _field(out.stdout, "tps = ", float)
    failed = _field(out.stdout, "number of failed transactions: ", int, default=0)
    q = statistics.quantiles(latencies_us, n=100) if done > 1 else [0.0] * 99
    return Result(
        name=name,
        rps=tps,
        p50_ms=q[49] / 1000,
        p99_ms=q[98] / 1000,
        requests=done,
        ok=done - failed,
        non2xx=failed,
        s5xx=failed,
        socket_errors=0,
    )


def _field(text: str, prefix: str, kind: type, default: Any = None) -> Any:
    for line in text.splitlines():
        if line.strip().startswith(prefix):
            return kind(line.strip().removeprefix(prefix).split()[0])
    if default is None:
        raise SystemExit(f"bench: pgbench output lacks {prefix!r}:\n{text}")
    return default
