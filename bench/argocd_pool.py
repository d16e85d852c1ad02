"""Does rendering and validating ArgoCD apps in worker processes pay? Threads against processes.

    python bench/argocd_pool.py [--runs 3] [--apps 40 120 300]

For each app count, builds that many kustomize apps (bench/homelab_bench.py's pattern) and times
`inv check --layer=argocd` with the renders in threads (the default below the threshold) and in
worker processes (`BLUMEOPS_ARGOCD_POOL_MIN_APPS=1`), cold (an empty state dir: every app rendered by
kustomize, parsed, validated) and warm (renders from the cache: only validation), medians of
interleaved runs. The threshold `POOL_MIN_APPS` in blumeops_tasks/argocd/checks.py comes from here.
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
sys.path.insert(0, str(REPO / "bench"))

from homelab_bench import FIXTURE, app, write  # noqa: E402


def build(root: Path, apps: int) -> None:
    for name in ("tasks.py", "invoke.yaml"):
        shutil.copy(FIXTURE / name, root / name)
    write(root / "argocd" / "root.yaml", (FIXTURE / "argocd" / "root.yaml").read_text())
    for index in range(1, apps + 1):
        app(root, index)


def timed(root: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "check", "--layer=argocd"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"inv check exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measure (median)")
    parser.add_argument("--apps", type=int, nargs="+", default=[40, 120], help="app counts to measure")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="blumeops-bench-pool-"))
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "BLUMEOPS_", "KUBE"))}
        base.update(HOME=str(work), NO_COLOR="1", PYTHONPATH=str(REPO))
        for count in args.apps:
            root = work / f"apps{count}"
            root.mkdir()
            build(root, count)
            samples: dict[str, list[float]] = {}
            for n in range(args.runs + 1):  # the first round is an untimed warm-up
                for mode, extra in (("threads", {}), ("processes", {"BLUMEOPS_ARGOCD_POOL_MIN_APPS": "1"})):
                    state = work / f"state-{count}-{mode}-{n}"
                    env = {**base, **extra, "INVOKE_BLUMEOPS_STATE_DIR": str(state)}
                    cold, warm = timed(root, env), timed(root, env)
                    if n:
                        samples.setdefault(f"{mode}, cold", []).append(cold)
                        samples.setdefault(f"{mode}, warm", []).append(warm)
            for name, values in samples.items():
                shown = [round(v, 2) for v in values]
                print(f"  {count:>4} apps, {name:<16} {statistics.median(values):6.2f} s  (samples {shown})")
        print(f"\n  environment: {os.cpu_count()} CPUs shared with other work; load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
