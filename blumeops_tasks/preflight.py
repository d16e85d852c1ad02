"""The one check runner, shared by `inv check` (offline) and `inv preflight` (environment).

A check is a named callable returning an `Outcome`; the runner attaches layer and name, runs
all checks concurrently, each with its own timeout, and collects every result before anything
is reported (fabric's Group habit: collect, then report once).

Checks run in daemon threads: a hanging check is reported as timed out and abandoned, and
never keeps the process alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str
    fix: str = ""


def ok(detail: str) -> Outcome:
    return Outcome("ok", detail)


def warn(detail: str, fix: str = "") -> Outcome:
    return Outcome("warn", detail, fix)


def failed(detail: str, fix: str = "") -> Outcome:
    return Outcome("fail", detail, fix)


def skipped(detail: str, fix: str = "") -> Outcome:
    """Not checkable here (e.g. a Helm source ArgoCD renders, a remote base that needs the network):
    said with its reason, never a failure."""
    return Outcome("skip", detail, fix)


def house_rule(strict: bool, detail: str, fix: str = "") -> Outcome:
    """A breach of one of our own conventions (not a tool's error): a warning, or a failure when
    `blumeops.lint.strict` is on. The operator's files are never failed for our taste by default."""
    return Outcome("fail" if strict else "warn", detail, fix)


@dataclass(frozen=True)
class CheckSpec:
    """A check to run: `run()` returns an Outcome (or raises: reported as fail)."""

    layer: str
    name: str
    run: Callable[[], Outcome]
    timeout: float | None = None


@dataclass(frozen=True)
class CheckResult:
    """The plain record every check ends as."""

    layer: str
    name: str
    status: Status
    detail: str
    fix: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def _finish(spec: CheckSpec, outcome: Outcome, started: float) -> CheckResult:
    return CheckResult(
        spec.layer,
        spec.name,
        outcome.status,
        outcome.detail,
        outcome.fix,
        round(time.monotonic() - started, 3),
    )


def run_checks(specs: Sequence[CheckSpec], default_timeout: float = DEFAULT_TIMEOUT) -> list[CheckResult]:
    """Run every check concurrently; results come back in the order the checks were given."""
    results: list[CheckResult | None] = [None] * len(specs)
    threads: list[tuple[threading.Thread, float]] = []
    started = time.monotonic()

    def runner(index: int, spec: CheckSpec) -> None:
        begin = time.monotonic()
        try:
            outcome = spec.run()
        except Exception as exc:  # a check that blows up is a failed check, with its reason
            detail = _first_line(str(exc)) or type(exc).__name__
            outcome = failed(f"{type(exc).__name__}: {detail}", "the check itself broke; fix the cause it names")
        results[index] = _finish(spec, outcome, begin)

    for index, spec in enumerate(specs):
        thread = threading.Thread(target=runner, args=(index, spec), daemon=True, name=f"check-{spec.name}")
        thread.start()
        threads.append((thread, spec.timeout if spec.timeout is not None else default_timeout))

    for index, (thread, timeout) in enumerate(threads):
        remaining = started + timeout - time.monotonic()
        thread.join(max(remaining, 0.0))
        if thread.is_alive() or results[index] is None:
            spec = specs[index]
            results[index] = CheckResult(
                spec.layer,
                spec.name,
                "fail",
                f"timed out after {timeout:g}s",
                "check the target is reachable, or raise the timeout setting",
                round(timeout, 3),
            )
    return [result for result in results if result is not None]


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(result.status == "fail" for result in results) else 0


_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def render(title: str, results: Sequence[CheckResult]) -> None:
    """One table grouped by layer, then a one-line verdict."""
    from blumeops_tasks import console

    ordered = sorted(results, key=lambda r: r.layer)  # stable: keeps each layer's own order
    rows = [[r.layer, r.name, r.status, r.detail, r.fix if r.status != "ok" else ""] for r in ordered]
    console.table(
        title, ["layer", "check", "status", "detail", "fix"], rows, styles=[_STYLE[r.status] for r in ordered]
    )
    fails = sum(r.status == "fail" for r in results)
    warns = sum(r.status == "warn" for r in results)
    skips = sum(r.status == "skip" for r in results)
    verdict = f"{len(results)} checks: {fails} failed, {warns} warnings"
    if skips:
        verdict += f", {skips} not checkable here"
    console.out(verdict, style="red" if fails else ("yellow" if warns else "green"))


def to_json(results: Sequence[CheckResult]) -> dict[str, Any]:
    return {"exit_code": exit_code(results), "checks": [result.to_dict() for result in results]}
