"""Startup cost: `inv --list` in this repo versus bare invoke listing an empty tasks.py.

Both are measured side by side in one run, interleaved, median of N runs each, and printed as a
ratio. Goal: <= 1.25 (the package must keep heavy libraries off the `inv --list` path).

    python bench/startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL = 1.25
BARE_TASKS = 'from invoke import task\n\n\n@task\ndef noop(c):\n    """Do nothing."""\n'


def _time(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (median taken; at least 5)")
    runs = max(parser.parse_args().runs, 5)
    command = [sys.executable, "-m", "invoke", "--list"]
    with tempfile.TemporaryDirectory() as empty:
        bare_dir = Path(empty)
        # invoke refuses to list a collection with no tasks, so the "empty" one holds one no-op task.
        (bare_dir / "tasks.py").write_text(BARE_TASKS)
        _time(command, REPO)  # warm both: byte-compile caches, page cache
        _time(command, bare_dir)
        ours, bare = [], []
        for _ in range(runs):
            ours.append(_time(command, REPO))
            bare.append(_time(command, bare_dir))
    ours_median, bare_median = statistics.median(ours), statistics.median(bare)
    ratio = ours_median / bare_median
    print(f"inv --list, blumeops repo : median {ours_median * 1000:7.1f} ms over {runs} runs")
    print(f"inv --list, empty tasks.py: median {bare_median * 1000:7.1f} ms over {runs} runs")
    verdict = "within" if ratio <= GOAL else "OVER"
    print(f"ratio {ratio:.2f} ({verdict} goal <= {GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
