"""The worker's CPU pool: calls run in processes of their own, survive a process that dies,
and report the function's own errors unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shop.cpu import CpuPool

_prepared: list[int] = []


def _prepare() -> None:
    _prepared.append(os.getpid())


def _where() -> tuple[int, list[int]]:
    return os.getpid(), list(_prepared)


def _die_once(marker: str) -> str:
    """Kill this process the first time (as the OOM killer would), answer the second."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    return f"answered by {os.getpid()}"


def _refuse(value: int) -> int:
    raise ValueError(f"no {value}")


async def test_calls_run_in_a_prepared_process_of_their_own() -> None:
    pool = CpuPool(1, _prepare)
    try:
        await pool.start()
        pid, prepared = await pool.run(_where)
        again, _ = await pool.run(_where)
    finally:
        pool.close()

    assert pid != os.getpid()
    assert prepared == [pid]  # the initializer ran there, once, before the calls
    assert again == pid  # the process lives on between calls
    assert _prepared == []  # and not here


async def test_without_processes_calls_run_inline() -> None:
    pool = CpuPool(0, _prepare)
    await pool.start()

    pid, _ = await pool.run(_where)

    assert pid == os.getpid()


async def test_a_process_that_dies_is_replaced_and_the_call_answered(tmp_path: Path) -> None:
    pool = CpuPool(1)
    try:
        first_pid, _ = await pool.run(_where)
        answer = await pool.run(_die_once, str(tmp_path / "marker"))
        later_pid, _ = await pool.run(_where)
    finally:
        pool.close()

    assert (tmp_path / "marker").read_text() == "died once"
    assert answer == f"answered by {later_pid}"
    assert later_pid != first_pid


async def test_the_functions_own_errors_reach_the_caller_unchanged() -> None:
    pool = CpuPool(1)
    try:
        with pytest.raises(ValueError, match="no 7"):
            await pool.run(_refuse, 7)
        assert await pool.run(abs, -3) == 3  # the pool is not broken by it
    finally:
        pool.close()


_ORPHAN_SCRIPT = """
import asyncio, os, sys, time
from shop.cpu import CpuPool

async def main():
    pool = CpuPool(1)
    pid = await pool.run(os.getpid)
    print(pid, flush=True)
    time.sleep(60)

asyncio.run(main())
"""


def test_the_processes_end_with_a_worker_killed_without_warning() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        assert Path(f"/proc/{child}").exists()
        worker.kill()  # SIGKILL: no shutdown, no atexit
        worker.wait()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{child}").exists()
    finally:
        worker.kill()


_EARLY_KILL_SCRIPT = """
import os, sys
from shop.cpu import CpuPool

pool = CpuPool(1)
pool._pool().submit(int)  # the process is spawned; this one dies before it is ready
print(os.getpid(), flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_process_whose_worker_died_before_it_started_ends_too() -> None:
    before = {int(pid) for pid in os.listdir("/proc") if pid.isdigit()}
    worker = subprocess.Popen([sys.executable, "-c", _EARLY_KILL_SCRIPT])
    worker.wait()

    def orphans() -> list[int]:
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) in before:
                continue
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing.spawn" in command and b"spawn_main" in command:
                found.append(int(pid))
        return found

    deadline = time.monotonic() + 15
    while orphans() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert orphans() == []
