"""The Pulumi program under the SDK's mocks, as `inv check` runs it, and what its report tells.

`run` starts `python -m blumeops_tasks.tailnet.mock_runner` in a subprocess with a timeout (so
`inv` never imports pulumi). A passing report is cached under the state dir, keyed by the content
of every file of the program (and the runner, the interpreter and the stack): the program runs
again only when one of them changed, and a cached pass says so. A failure is never cached.

The report is the program's own answer to "what does it build": the devices it looks up with
`get_device` and the tags any resource carries (DeviceTags, TailnetKey) are read from it, never
from files we guess the program reads.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blumeops_tasks.preflight import Outcome, failed, ok
from blumeops_tasks.tailnet.mock_runner import GET_DEVICE

RUNNER = "blumeops_tasks.tailnet.mock_runner"
CACHE_KIND = "program-under-mocks"
# Directories that are not the program: environments, caches, local state (hidden ones too).
NOT_PROGRAM = frozenset({"__pycache__", "node_modules", "venv"})


@dataclass(frozen=True)
class MockRun:
    """The check's row, and the report when the program ran (or its cached pass)."""

    outcome: Outcome
    report: dict[str, Any] | None


def program_files(project_dir: Path) -> list[Path]:
    """Every file of the program, sorted: hidden directories, environments and caches left out."""
    files: list[Path] = []
    for folder, dirs, names in os.walk(project_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in NOT_PROGRAM]  # never walked into
        files.extend(Path(folder) / name for name in names)
    return sorted(path for path in files if path.is_file())


def cache_key(project_dir: Path, stack: str, python: str) -> str:
    """Content of the program's files, the runner's own source, the interpreter and the stack."""
    digest = hashlib.sha256()
    runner = Path(__file__).with_name("mock_runner.py")
    digest.update(f"runner\0{runner.read_bytes().hex()}\0python\0{python}\0stack\0{stack}\n".encode())
    for path in program_files(project_dir):
        digest.update(f"{path.relative_to(project_dir).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def summary(report: Mapping[str, Any]) -> str:
    """'5 resources: 1 Acl, 2 DeviceTags, ...'."""
    kinds = Counter(str(r.get("type", "")).rsplit(":", 1)[-1] for r in report.get("resources") or [])
    total = sum(kinds.values())
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return f"{total} resource{'s' if total != 1 else ''}" + (f": {parts}" if parts else "")


def _failure(stderr: str, code: int) -> Outcome:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return failed(lines[-1] if lines else f"the mock runner exited {code}", "fix the program or the file it names")


def run(project_dir: Path, stack: str, python: str, timeout: float, cache_dir: Path | None) -> MockRun:
    """The program under mocks: the cached pass when nothing changed, else a fresh run."""
    from blumeops_tasks.hosts import cache

    if not (project_dir / "Pulumi.yaml").is_file():
        return MockRun(
            failed(f"no Pulumi.yaml in {project_dir}", "set blumeops.tailnet.dir to the Pulumi project's directory"),
            None,
        )
    key = cache_key(project_dir, stack, python) if cache_dir is not None else ""
    if cache_dir is not None and isinstance(cached := cache.get(cache_dir, CACHE_KIND, key), dict):
        return MockRun(ok(f"{summary(cached)} (cached: the program's files are unchanged since it passed)"), cached)
    fresh = _fresh_run([python, "-m", RUNNER, "--dir", str(project_dir), "--stack", stack], timeout)
    if cache_dir is not None and fresh.report is not None:
        cache.put(cache_dir, CACHE_KIND, key, fresh.report)
    return fresh


def _fresh_run(command: list[str], timeout: float) -> MockRun:
    import json

    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return MockRun(
            failed(f"the program did not finish under mocks in {timeout:g}s", "look for a loop or a blocking call"),
            None,
        )
    except OSError as exc:
        return MockRun(failed(f"cannot start {command[0]}: {exc.strerror}", "set blumeops.tailnet.python"), None)
    if done.returncode:
        return MockRun(_failure(done.stderr, done.returncode), None)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return MockRun(failed("the mock runner printed no report", "run it by hand: " + " ".join(command)), None)
    return MockRun(ok(summary(report)), report)


# --- what the report tells ---------------------------------------------------------------------


def looked_up_devices(report: Mapping[str, Any]) -> list[str]:
    """Short hostnames the program looks up with get_device (by hostname, or by its MagicDNS name), sorted:
    the SDK runs the lookups concurrently, so their order in the report is not the program's."""
    names: list[str] = []
    for call in report.get("invokes") or []:
        if call.get("token") != GET_DEVICE:
            continue
        args = call.get("args") or {}
        name = str(args.get("hostname") or str(args.get("name") or "").split(".", 1)[0])
        if name and name not in names:
            names.append(name)
    return sorted(names)


def tags_carried(report: Mapping[str, Any]) -> dict[str, str]:
    """Every tag a resource carries (DeviceTags, TailnetKey, ...) -> the first resource carrying it."""
    carried: dict[str, str] = {}
    for resource in report.get("resources") or []:
        tags = (resource.get("inputs") or {}).get("tags")
        if not isinstance(tags, list):
            continue
        where = f"{str(resource.get('type', '')).rsplit(':', 1)[-1]} {resource.get('name', '')}"
        for tag in tags:
            if isinstance(tag, str):
                carried.setdefault(tag, where)
    return carried
