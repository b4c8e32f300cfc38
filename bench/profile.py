"""``--profile``: sample every API worker with py-spy while a scenario runs.

Writes one collapsed-stack file per scenario and worker (``<scenario>-<pid>.txt``,
py-spy's ``raw`` format: open it in https://www.speedscope.app or feed it to
flamegraph.pl) and prints the functions with the most samples, so a run says
where the time went without another tool.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cpu_ms", "sampling", "top_frames"]

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("bench: --profile needs py-spy (pip install py-spy, in the test extra)")
    return found


@contextlib.contextmanager
def sampling(out: Path | None, name: str, pids: list[int], seconds: float) -> Iterator[None]:
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(  # noqa: S603
            [
                _py_spy(),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(out / f"{name}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
        top = top_frames(sorted(out.glob(f"{name}-*.txt")))
        print(f"  profile {name}: " + "; ".join(f"{share:.0%} {frame}" for frame, share in top))


def top_frames(files: list[Path], n: int = 8) -> list[tuple[str, float]]:
    """Functions by inclusive share of samples (a frame counted once per stack)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for f in files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)
            for frame in set(stack.split(";")):
                if "(shop/" in frame or "/shop/" in frame:
                    inclusive[frame] += int(count)
    return [(frame, c / total) for frame, c in inclusive.most_common(n)] if total else []


def cpu_ms(pids: list[int]) -> dict[int, float]:
    """User + system CPU milliseconds each process has used so far (gone ones left out).

    Less sensitive to a shared machine than latency: a scenario's CPU per request
    is the difference over the run divided by its requests.
    """
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) * _TICK_MS
    return used
