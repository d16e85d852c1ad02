"""Check runner concurrency: N checks that each take 1 s, against one such check.

Measured side by side in one run (interleaved, median of the runs); the ratio should stay near 1.0
(goal <= 1.2): checks run concurrently, so eight slow checks cost about what one does.

    python bench/check_runner.py [--checks 8] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from blumeops_tasks.preflight import CheckSpec, Outcome, ok, run_checks

GOAL = 1.2
CHECK_SECONDS = 1.0


def slow_check() -> Outcome:
    time.sleep(CHECK_SECONDS)
    return ok("slept")


def timed(count: int) -> float:
    specs = [CheckSpec("bench", f"c{i}", slow_check) for i in range(count)]
    start = time.perf_counter()
    results = run_checks(specs, default_timeout=10)
    elapsed = time.perf_counter() - start
    assert all(r.status == "ok" for r in results)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=8, help="how many 1 s checks to run at once")
    parser.add_argument("--runs", type=int, default=5, help="runs of each (median taken)")
    args = parser.parse_args()
    many, one = [], []
    for _ in range(max(args.runs, 1)):
        many.append(timed(args.checks))
        one.append(timed(1))
    many_median, one_median = statistics.median(many), statistics.median(one)
    ratio = many_median / one_median
    print(f"{args.checks} checks of {CHECK_SECONDS:g} s: median {many_median:.3f} s over {len(many)} runs")
    print(f"1 check of {CHECK_SECONDS:g} s : median {one_median:.3f} s over {len(one)} runs")
    print(f"ratio {ratio:.2f} ({'within' if ratio <= GOAL else 'OVER'} goal <= {GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
