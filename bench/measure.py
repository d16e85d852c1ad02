"""What every bench here shares: timing a command, and medians of measures run interleaved.

Interleaved, so drift hits every side alike; rotated each round, so no measure always follows the same
one (a run can leave work behind: ssh masters, a host's Python shutting down).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Every sample of the last `medians` call, by measure (benches print them beside the medians).
SAMPLES: dict[str, list[float]] = {}


def timed(command: list[str], cwd: Path, env: dict[str, str], expect: tuple[int, ...] = (0,)) -> float:
    """Seconds `command` took; any exit code outside `expect` stops the bench with the command's output."""
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if done.returncode not in expect:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def medians(runs: int, measures: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The median of `runs` samples of every measure, taken interleaved and rotated."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    names = list(measures)
    for round_ in range(runs):
        start = round_ % len(names)
        for name in names[start:] + names[:start]:
            samples[name].append(measures[name]())
    SAMPLES.update({name: [round(v, 2) for v in values] for name, values in samples.items()})
    return {name: statistics.median(values) for name, values in samples.items()}
