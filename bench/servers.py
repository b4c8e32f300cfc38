"""The processes a benchmark run needs, each started on a free loopback port and stopped on exit.

A throwaway PostgreSQL cluster (initdb in a temporary directory, fsync on: we
measure what production would pay), a memcached, the API the production way
(``shop run`` with uvicorn workers) and one ``shop worker``. Every process is
started in its own session so that stopping it also stops its children.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["PG_BIN", "Services", "find_pgbin", "require_tools", "services"]

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
HOST = "127.0.0.1"
SECRET_KEY = "bench-secret-key-not-for-production-0123456789"
STAFF = ("staff@bench.example.com", "benchstaff", "Bench-Staff-Pass-2024!")
WORKER_NICENESS = 19
"""The job worker runs at the lowest CPU priority. Every order defers an invoice
(a reportlab PDF, about 30 ms of CPU), and one round's checkout scenarios queue
some 15,000 of them, far more than one worker renders in the seconds between
scenarios. At normal priority that backlog took a core from whichever
scenario came next (C0 and S2 lost a third in rounds 2 and 3), so the
ratios measured the queue rather than the scenario. Niced, the worker renders
with the CPU the scenarios leave idle; the report says how many jobs were
still waiting at the end. In production the worker runs in its own container
(compose.yaml), or at a lower priority beside the API on a shared host."""


def find_pgbin() -> Path | None:
    for d in PG_BIN_DIRS:
        if (d / "initdb").exists() and (d / "pgbench").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pgbench") else None


PG_BIN = find_pgbin()


class MissingTool(SystemExit):
    pass


def require_tools() -> None:
    """Stop with one message naming the Debian packages to install."""
    missing = []
    if not shutil.which("wrk"):
        missing.append("wrk")
    if PG_BIN is None:
        missing += ["postgresql", "postgresql-contrib"]
    if not shutil.which("memcached"):
        missing.append("memcached")
    if missing:
        raise MissingTool(
            f"bench: missing {', '.join(missing)}; install with: "
            f"sudo apt-get install {' '.join(dict.fromkeys(missing))}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"bench: {what} exited with {proc.returncode}; see {log}:\n{_tail(log)}"
            )
        if ready():
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: {what} not ready after {timeout:.0f}s; see {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


@dataclass
class Services:
    workdir: Path
    pg_port: int
    mc_port: int
    api_port: int
    api_pid: int
    database_url: str
    env: dict[str, str]
    reused: bool = False
    """The PostgreSQL cluster was an existing one (``--scale --keep``)."""
    miss_api_port: int | None = None
    miss_api_pid: int | None = None

    @property
    def miss_url(self) -> str:
        assert self.miss_api_port is not None
        return f"http://{HOST}:{self.miss_api_port}"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"


class _Procs:
    """Started processes, stopped in reverse order (SIGTERM to the group, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def _pg_ready(port: int) -> bool:
    assert PG_BIN is not None
    probe = [str(PG_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(port)]
    return subprocess.run(probe, check=False).returncode == 0  # noqa: S603


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run its programs as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _start_postgres(procs: _Procs, workdir: Path, data: Path | None = None) -> tuple[int, bool]:
    """``(port, reused)``: ``data`` is a cluster directory to reuse when it holds one."""
    assert PG_BIN is not None
    data = data or workdir / "pgdata"
    reused = (data / "PG_VERSION").exists()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
    if not reused:
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres")
        subprocess.run(  # noqa: S603
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log = workdir / "postgres.log"
    port = free_port()
    proc = procs.start(
        "postgres",
        _as_postgres(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                HOST,
                "-k",
                str(workdir),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "logging_collector=off",
                # Counts statements (M1's list hit ratio: page queries per list request).
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "maintenance_work_mem=256MB",
            ]
        ),
        log,
    )
    # Accepting connections, not just listening: a reused cluster may first
    # replay its WAL (recovery after the previous run's stop).
    _wait("PostgreSQL", lambda: _pg_ready(port), proc, log, 300)
    if not reused:
        subprocess.run(  # noqa: S603
            [str(PG_BIN / "createdb"), "-h", HOST, "-p", str(port), "-U", "postgres", "shop"],
            check=True,
        )
    return port, reused


def _start_memcached(procs: _Procs, workdir: Path) -> int:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    log = workdir / "memcached.log"
    proc = procs.start(
        "memcached",
        ["memcached", "-l", HOST, "-p", str(port), "-U", "0", "-m", "128", "-t", "2", *user],
        log,
    )
    _wait("memcached", lambda: _port_open(port), proc, log, 10)
    return port


def _lower_priority(proc: subprocess.Popen[bytes]) -> None:
    """Also lower the priority of the process's autogroup.

    With the kernel's autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``),
    each session is one scheduling entity and a process's nice value only
    weighs against the processes of its own session. The worker starts its own
    session (so it can be stopped with its children), so its niceness alone
    changes nothing against the API; the group's niceness does.
    """
    with contextlib.suppress(OSError):  # no autogroup: the process's niceness applies
        Path(f"/proc/{proc.pid}/autogroup").write_text(str(WORKER_NICENESS))


def _shop(*args: str) -> list[str]:
    return [sys.executable, "-m", "shop.cli", *args]


def _api_ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def services(
    workdir: Path,
    api_workers: int,
    worker_concurrency: int,
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
    pgdata: Path | None = None,
    miss_api: bool = False,
) -> Iterator[Services]:
    """Everything a run needs; ``source`` is a tree whose ``src/`` replaces the installed shop.

    ``pgdata``: a PostgreSQL cluster directory, reused when it holds one (``--scale --keep``).
    ``miss_api``: also a second API whose memcached never answers (a closed port),
    so every read of it is a cache miss through the whole stack (issue 12's point 2).
    """
    procs = _Procs()
    # Ctrl+C or a TERM from nox: unwind through the finally below.
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        pg_port, reused = _start_postgres(procs, workdir, pgdata)
        mc_port = _start_memcached(procs, workdir)
        database_url = f"postgresql://postgres@{HOST}:{pg_port}/shop"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "MEMCACHED_URL": f"{HOST}:{mc_port}",
            "SECRET_KEY": SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEBUG": "false",
            # Seeding registers 50 users from one address; the limit is for the internet.
            "REGISTER_PER_MINUTE": "100000",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if source is not None:
            env["PYTHONPATH"] = str(source / "src")
        env.update(extra_env or {})
        subprocess.run(_shop("database", "upgrade"), env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        email, username, password = STAFF
        subprocess.run(  # noqa: S603
            _shop(
                "users",
                "create",
                "--email",
                email,
                "--username",
                username,
                "--password",
                password,
                "--staff",
            ),
            env=env,
            check=not reused,  # a reused cluster already has the staff user
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if reused else None,
            stdin=subprocess.DEVNULL,
        )
        api_port = free_port()
        log = workdir / "api.log"
        api = procs.start(
            "api",
            _shop("run", "--host", HOST, "--port", str(api_port), "--workers", str(api_workers)),
            log,
            env,
        )
        url = f"http://{HOST}:{api_port}"
        _wait("shop run", lambda: _api_ready(url), api, log, 60)
        wlog = workdir / "worker.log"
        worker = _shop("worker", "--concurrency", str(worker_concurrency))
        _lower_priority(
            procs.start("worker", ["nice", "-n", str(WORKER_NICENESS), *worker], wlog, env)
        )
        miss_port = miss_pid = None
        if miss_api:
            miss_port = free_port()
            dead = free_port()  # nothing listens there: every cache call fails fast
            miss_env = {**env, "MEMCACHED_URL": f"{HOST}:{dead}"}
            miss = procs.start(
                "miss-api",
                _shop(
                    "run", "--host", HOST, "--port", str(miss_port), "--workers", str(api_workers)
                ),
                workdir / "miss-api.log",
                miss_env,
            )
            _wait(
                "shop run (misses)",
                lambda: _port_open(miss_port),
                miss,
                workdir / "miss-api.log",
                60,
            )
            miss_pid = miss.pid
        yield Services(
            workdir,
            pg_port,
            mc_port,
            api_port,
            api.pid,
            database_url,
            env,
            reused,
            miss_port,
            miss_pid,
        )
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)
