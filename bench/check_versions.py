"""`inv check` of this repo, cold and warm, at two commits side by side in one run.

Each commit is checked out as a detached worktree (with its own package on PYTHONPATH), and
`inv check` runs in both, interleaved, median of N runs each:
* cold: the state directory's caches removed before the run;
* warm: run again right after, caches in place.

    python bench/check_versions.py --before <commit> [--after HEAD] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _worktree(ref: str, parent: Path, name: str) -> Path:
    path = parent / name
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(path), ref], cwd=REPO, check=True)
    return path


def _check(tree: Path, *, cold: bool) -> tuple[float, int]:
    if cold:
        shutil.rmtree(tree / ".blumeops" / "cache", ignore_errors=True)
        shutil.rmtree(tree / ".ansible", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # both sides cache bytecode, as on an operator's machine
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "check"],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier commit")
    parser.add_argument("--after", default="HEAD", help="the later commit (default HEAD)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measure (median taken)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trees = {
            "before": _worktree(args.before, Path(scratch), "before"),
            "after": _worktree(args.after, Path(scratch), "after"),
        }
        try:
            samples: dict[tuple[str, str], list[float]] = {}
            codes: dict[str, set[int]] = {name: set() for name in trees}
            for tree in trees.values():  # untimed warm-up: bytecode, page cache
                _check(tree, cold=True)
            for _ in range(max(args.runs, 3)):
                for name, tree in trees.items():
                    for kind in ("cold", "warm"):
                        seconds, code = _check(tree, cold=kind == "cold")
                        samples.setdefault((name, kind), []).append(seconds)
                        codes[name].add(code)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)
    print(f"inv check on this repo, median of {max(args.runs, 3)} runs, {os.cpu_count()} CPUs")
    for kind in ("cold", "warm"):
        before = statistics.median(samples[("before", kind)])
        after = statistics.median(samples[("after", kind)])
        print(f"  {kind}: before {before:6.2f} s  after {after:6.2f} s  after/before {after / before:.2f}")
    for name in trees:
        print(f"  exit codes {name}: {sorted(codes[name])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
