"""The one plan model: what a layer would change, per target, before anything changes.

Every layer's preview returns a `LayerPlan`; `render` and `to_json` are the only ways plans
are shown. Exit codes are shared: 0 no changes, 2 changes pending, 1 error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "delete", "replace", "run"]
ACTIONS: tuple[Action, ...] = ("create", "update", "delete", "replace", "run")

EXIT_NO_CHANGES = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2


@dataclass(frozen=True)
class Change:
    """One thing that would change: a resource, a file, an Ansible task, a Kubernetes object."""

    action: Action
    resource: str
    diff: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "resource": self.resource, "diff": self.diff, "detail": self.detail}


@dataclass(frozen=True)
class TargetPlan:
    """Changes for one target: a host, a stack, an application."""

    target: str
    changes: tuple[Change, ...] = ()

    def counts(self) -> dict[str, int]:
        return count_actions(self.changes)


@dataclass(frozen=True)
class LayerPlan:
    """A layer's read-only preview. `error` set means the preview itself failed."""

    layer: str
    targets: tuple[TargetPlan, ...] = ()
    error: str | None = None
    note: str = ""
    available: bool = True

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(change for target in self.targets for change in target.changes)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return count_actions(self.changes)

    def digest(self) -> str:
        """A stable fingerprint of what this plan would change: sha256 of its canonical content
        (layer, targets, changes with their diffs), secrets redacted first, so it can be printed,
        pasted into a review and given back to the apply as `--plan=DIGEST`."""
        import hashlib
        import json

        from blumeops_tasks.redaction import redact_data

        content = {
            "layer": self.layer,
            "targets": [{"target": t.target, "changes": [c.to_dict() for c in t.changes]} for t in self.targets],
        }
        canonical = json.dumps(redact_data(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "available": self.available,
            "error": self.error,
            "note": self.note,
            "digest": self.digest(),
            "counts": self.counts(),
            "targets": [
                {
                    "target": t.target,
                    "counts": t.counts(),
                    "changes": [c.to_dict() for c in t.changes],
                }
                for t in self.targets
            ],
        }


def count_actions(changes: Iterable[Change]) -> dict[str, int]:
    counter = Counter(change.action for change in changes)
    return {action: counter.get(action, 0) for action in ACTIONS}


def exit_code(plans: Sequence[LayerPlan]) -> int:
    """0 no changes, 2 changes pending, 1 any preview failed (errors win over changes)."""
    if any(plan.error for plan in plans):
        return EXIT_ERROR
    if any(plan.has_changes for plan in plans):
        return EXIT_CHANGES
    return EXIT_NO_CHANGES


def to_json(plans: Sequence[LayerPlan]) -> dict[str, Any]:
    total = count_actions(change for plan in plans for change in plan.changes)
    return {"exit_code": exit_code(plans), "counts": total, "layers": [plan.to_dict() for plan in plans]}


def summary_rows(plans: Sequence[LayerPlan]) -> list[list[str]]:
    """Rows for the summary table: one per target, or one per layer when it has none."""
    rows: list[list[str]] = []
    for plan in plans:
        if plan.error or not plan.available or not plan.targets:
            state = f"error: {plan.error}" if plan.error else (plan.note or "no targets")
            rows.append([plan.layer, "-", *("" for _ in ACTIONS), state])
            continue
        for target in plan.targets:
            counts = target.counts()
            state = "changes pending" if target.changes else "no changes"
            rows.append([plan.layer, target.target, *(str(counts[a]) for a in ACTIONS), state])
    return rows


def render(plans: Sequence[LayerPlan]) -> None:
    """Print the summary table, then every change with its diff."""
    from blumeops_tasks import console

    console.table("Plan", ["layer", "target", *ACTIONS, "state"], summary_rows(plans))
    for plan in plans:
        for target in plan.targets:
            for change in target.changes:
                where = f"[{plan.layer}/{target.target}]"
                line = f"{_SIGIL[change.action]} {where} {change.action} {change.resource}"
                if change.detail:
                    line += f" ({change.detail})"
                console.out(line, style=_STYLE[change.action])
                if change.diff:
                    console.diff(change.diff)
        if plan.note and plan.available and not plan.error:
            console.note(f"{plan.layer}: {plan.note}")
        if plan.available and not plan.error:
            console.out(
                f"{plan.layer} plan digest: {plan.digest()} (apply exactly this plan with --plan={short(plan)})"
            )


def short(plan: LayerPlan) -> str:
    """The digest as typed on a command line: its first 16 hex digits (a prefix of the full digest)."""
    return plan.digest().removeprefix("sha256:")[:16]


def digest_matches(plan: LayerPlan, given: str) -> bool:
    """Whether `given` (the full digest, with or without "sha256:", or a prefix of at least 12 hex
    digits) names this plan's digest."""
    wanted = given.strip().lower().removeprefix("sha256:")
    full = plan.digest().removeprefix("sha256:")
    return len(wanted) >= DIGEST_MIN_PREFIX and full.startswith(wanted)


DIGEST_MIN_PREFIX = 12


def report(plans: Sequence[LayerPlan], *, as_json: bool) -> None:
    """Show plans (JSON, or the table and diffs) and stop with the shared exit code: returns on 0,
    raises `Exit` with 2 (changes pending) or 1 (a preview failed; in text mode the failures are the
    exit message, one sentence per layer)."""
    from invoke.exceptions import Exit

    from blumeops_tasks import console
    from blumeops_tasks.redaction import redact

    if as_json:
        console.print_json(to_json(plans))
    else:
        render(plans)
    code = exit_code(plans)
    errors = [f"{plan.layer} preview failed: {plan.error}" for plan in plans if plan.error]
    if errors and not as_json:
        raise Exit(redact("; ".join(errors)), code=code)
    if code:
        raise Exit(code=code)


_SIGIL = {"create": "+", "update": "~", "delete": "-", "replace": "+-", "run": ">"}
_STYLE = {"create": "green", "update": "yellow", "delete": "red", "replace": "magenta", "run": "cyan"}


@dataclass
class PlanBuilder:
    """Collects changes per target in first-seen order (handy for parsers)."""

    layer: str
    _targets: dict[str, list[Change]] = field(default_factory=dict)

    def target(self, name: str) -> None:
        self._targets.setdefault(name, [])

    def add(self, target: str, change: Change) -> None:
        self._targets.setdefault(target, []).append(change)

    def build(self, note: str = "") -> LayerPlan:
        targets = tuple(TargetPlan(name, tuple(changes)) for name, changes in self._targets.items())
        return LayerPlan(self.layer, targets, note=note)
