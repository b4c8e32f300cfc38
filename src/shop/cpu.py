"""CPU-bound work of a worker, run off its event loop in processes of its own.

A `shop worker` is one asyncio process: its jobs' database round trips, its heartbeat and
its other jobs (a webhook waiting for its receiver) all run on one event loop. A job that
computes for a while (an invoice PDF: about 1.5 ms of reportlab) holds the GIL for that
long, stops everything else, and keeps the whole worker on one core: at checkout rates
the rendering, not the queue, decides how many workers a shop needs.

`CpuPool.run` sends such a call to a pool of ``JOB_CPU_PROCESSES`` processes, children of
the worker, and awaits the result without blocking the loop; the worker's job slots then
overlap their round trips with renderings on another core. The processes are *spawned*
(never forked: the parent has threads and a running loop), ignore Ctrl+C (the worker
stops them once its jobs are done) and run ``initializer`` once (e.g. loading a font), so
the first job does not pay for it. ``JOB_CPU_PROCESSES=0`` runs
every call inline, as a worker on a single core should.

A child that dies (killed, out of memory) breaks a `ProcessPoolExecutor` for good: the
call that saw it starts a new pool and runs again once there (calls sent here are pure
functions of their arguments, safe to repeat). Exceptions raised by the function itself
reach the caller unchanged. A worker that dies without stopping its processes (``kill -9``)
takes them with it within a second: each watches its parent.

This module knows no domain: the composition point (`shop.cli`) names the initializer.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

__all__ = ["CpuPool"]

logger = logging.getLogger("shop.cpu")

ORPHAN_CHECK_SECONDS = 1.0

P = ParamSpec("P")
T = TypeVar("T")


class CpuPool:
    def __init__(self, processes: int = 0, initializer: Callable[[], None] | None = None) -> None:
        self.processes = processes
        self._initializer = initializer
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_process,
                initargs=(self._initializer, os.getpid()),
            )
        return self._executor

    async def start(self) -> None:
        """Spawn the processes and wait for their initializer, rather than on the first call."""
        if self.processes:
            pool = self._pool()
            await asyncio.gather(
                *(asyncio.wrap_future(pool.submit(int)) for _ in range(self.processes))
            )

    async def run(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(*args, **kwargs)`` in a pool process (inline without processes)."""
        if not self.processes:
            return function(*args, **kwargs)
        pool = self._pool()
        try:
            return await asyncio.wrap_future(pool.submit(function, *args, **kwargs))
        except BrokenProcessPool:
            if self._executor is pool:  # not replaced yet by another call that saw it break
                logger.warning("a CPU pool process died; starting a new pool")
                self._executor = None
                pool.shutdown(wait=False, cancel_futures=True)
            return await asyncio.wrap_future(self._pool().submit(function, *args, **kwargs))

    def close(self) -> None:
        """Stop the processes (after the calls they are running)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _start_process(initializer: Callable[[], None] | None, parent: int) -> None:
    """In each pool process: leave Ctrl+C to the worker (a terminal sends it to the whole
    process group; the worker finishes its jobs, then stops its processes), end with the
    worker however it ends, then prepare."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The worker's pid as the worker saw it: it may be gone before this process starts.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer()


def _exit_with(parent: int) -> None:
    """A pool process holds both ends of its call queue, so it never sees the worker go:
    after a ``kill -9`` (or the OOM killer) it would wait for calls forever, an orphan.
    It checks its parent every `ORPHAN_CHECK_SECONDS` and ends once adopted by another."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)
