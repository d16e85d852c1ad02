"""Pure functions over the JSON our callback plugin writes (hosts/ansible_plugins/callback/blumeops_results.py).

No ansible import here: the document is plain data, so every decision is unit-tested on captured files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blumeops_tasks.plan import Action, Change, LayerPlan, PlanBuilder

RECAP_KEYS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")


@dataclass(frozen=True)
class Problem:
    """A task that failed, or a host that could not be reached."""

    host: str
    task: str
    status: str  # "failed" or "unreachable"
    msg: str

    def sentence(self) -> str:
        reason = f": {first_line(self.msg)}" if self.msg.strip() else ""
        if self.status == "unreachable":
            return f"host {self.host} was unreachable during task '{self.task}'{reason}"
        return f"task '{self.task}' failed on host {self.host}{reason}"


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def load(path: Path) -> dict[str, Any] | None:
    """The callback's document, or None when ansible stopped before writing one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def task_label(record: dict[str, Any]) -> str:
    """`role : Task name` as ansible prints it (the callback records what ansible shows)."""
    return str(record.get("task") or "?")


def problems(doc: dict[str, Any]) -> list[Problem]:
    """Failed (not ignored) tasks and unreachable hosts, in the order they happened."""
    found: list[Problem] = []
    for record in doc.get("tasks") or []:
        status = record.get("status")
        if status == "unreachable" or (status == "failed" and not record.get("ignore_errors")):
            found.append(
                Problem(str(record.get("host")), task_label(record), str(status), str(record.get("msg") or ""))
            )
    return found


NOT_PREVIEWABLE = "will run, not previewable"
SECRET_CHANGE = "changed (secret)"


def change_for(record: dict[str, Any]) -> Change:
    """A task as a plan change: "update" when it changes a file (has a diff), else "run".

    A change whose content is secret - Ansible hid it (`no_log`, `diff: false`: the callback's
    `secret`), or its diff holds a secret value (an environment secret, an Ansible Vault value) - is
    an "update" with no diff, "changed (secret)". A task check mode cannot preview is a "run" that
    "will run, not previewable".
    """
    from blumeops_tasks.redaction import contains_secret

    diff = str(record.get("diff") or "")
    path = str(record.get("path") or "")
    if record.get("not_previewable"):
        action: Action = "run"
        diff, detail = "", NOT_PREVIEWABLE
    elif record.get("secret") or contains_secret(diff):
        action = "update"
        diff, detail = "", f"{path}; {SECRET_CHANGE}" if path else SECRET_CHANGE
    else:
        action = "update" if diff.strip() else "run"
        detail = path if path else str(record.get("action") or "")
    if record.get("handler"):
        detail = f"handler; {detail}" if detail else "handler"
    return Change(action, task_label(record), diff=diff, detail=detail)


def pending(record: dict[str, Any]) -> bool:
    """Whether a task is a change the plan lists: it changed in check mode, or check mode could not
    preview it (it will run on apply)."""
    return record.get("status") == "changed" or bool(record.get("not_previewable"))


def to_plan(doc: dict[str, Any] | None, layer: str = "hosts", note: str = "") -> LayerPlan:
    """The shared plan model from a (check-mode) run: per host, the tasks that would change and
    those check mode cannot preview (they will run), so "no changes" never hides work.

    Every host in the recap is a target, even with no changes. A failed task or unreachable host
    makes the whole plan an error naming them (one sentence each, joined).
    """
    if doc is None:
        return LayerPlan(layer, error="ansible-playbook stopped before any play ran (no results written)")
    if doc.get("complete") and not doc.get("stats") and not doc.get("tasks"):
        plays = ", ".join(doc.get("plays") or []) or "the playbook"
        return LayerPlan(layer, error=f"no inventory host matched {plays}; check --host/--limit and the inventory")
    builder = PlanBuilder(layer)
    for host in doc.get("stats") or {}:
        builder.target(str(host))
    for record in doc.get("tasks") or []:
        host = str(record.get("host"))
        builder.target(host)
        if pending(record):
            builder.add(host, change_for(record))
    plan = builder.build(note=note)
    found = problems(doc)
    if found:
        return LayerPlan(layer, plan.targets, error="; ".join(p.sentence() for p in found), note=note)
    return plan


def recap(doc: dict[str, Any] | None) -> dict[str, dict[str, int]]:
    """Per-host recap counts, in the order ansible reported the hosts."""
    if not doc:
        return {}
    stats = doc.get("stats") or {}
    return {str(host): {key: int(counts.get(key, 0)) for key in RECAP_KEYS} for host, counts in stats.items()}


def summary_rows(doc: dict[str, Any] | None) -> list[list[str]]:
    """Rows of the per-host summary table: host, each recap count, a verdict."""
    rows = []
    for host, counts in recap(doc).items():
        if counts["unreachable"]:
            verdict = "unreachable"
        elif counts["failures"]:
            verdict = "failed"
        elif counts["changed"]:
            verdict = "changed"
        else:
            verdict = "in line with the repo"
        rows.append([host, *(str(counts[key]) for key in RECAP_KEYS), verdict])
    return rows


def tasks_run(doc: dict[str, Any] | None, host: str | None = None) -> list[str]:
    """Labels of the tasks that ran (not skipped) on a host, or on any host."""
    if not doc:
        return []
    return [
        task_label(r)
        for r in doc.get("tasks") or []
        if r.get("status") != "skipped" and (host is None or r.get("host") == host)
    ]


def roles_run(doc: dict[str, Any] | None) -> set[str]:
    """Roles with at least one task that was not skipped."""
    if not doc:
        return set()
    return {str(r.get("role")) for r in doc.get("tasks") or [] if r.get("role") and r.get("status") != "skipped"}
