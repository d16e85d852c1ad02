"""`inv review`: what a pull request would do, as Markdown fit for a pull-request comment.

Three parts, each from the spine that already answers it:
* the offline checks `inv check` runs (the layers' `offline_checks`, through the one runner),
  failures and warnings listed;
* the files changed since the merge base with `--since`, mapped to targets and the exact apply
  commands (`gitops.tasks.affected_report`, as `inv affected`);
* each layer's plan with its digest, when a live preview can run: with `--live`, or when the
  layer's own preflight passes (its credentials and tools are there); otherwise the reason.

`collect` gathers the document; `markdown` renders it (pure, golden-tested).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, layers
from blumeops_tasks.config import repo_root, setting

if TYPE_CHECKING:
    from blumeops_tasks.layer import Layer
    from blumeops_tasks.plan import LayerPlan

MARKER = "<!-- blumeops-review -->"  # lets a workflow find and update its own comment
MAX_DIFF = 4000  # characters of one change's diff shown in the comment
MAX_DIFFS = 40000  # characters of all diffs together (GitHub comments stop at 65536)
SHOWN_FILES = 50
ACTIONS = ("create", "update", "delete", "replace", "run")


def plan_digest(plan: Any) -> str | None:
    """The plan's digest (`LayerPlan.digest()`), or None where the plan model has none."""
    digest = getattr(plan, "digest", None)
    value = digest() if callable(digest) else digest
    return str(value) if value else None


# ---- gathering ------------------------------------------------------------------------------


def merge_base(c: Context, since: str) -> str:
    """The commit HEAD branched from `since` (`git merge-base`), as a pull request compares."""
    from blumeops_tasks.gitops import git_state

    root = repo_root(c)
    base = git_state.resolve_since(c, root, since, "in a pull request, its target branch, e.g. --since=origin/main")
    code, out, _err = git_state.git(c, root, f"merge-base {shlex.quote(base)} HEAD")
    return out.strip() if code == 0 and out.strip() else base


def offline_results(c: Context, selected: Sequence[Layer]) -> list[dict[str, Any]]:
    """The checks `inv check` runs, through the same runner and timeout."""
    from blumeops_tasks import preflight as runner

    specs = [spec for lay in selected for spec in lay.offline_checks(c)]
    with console.status(f"Offline checks: {len(specs)} checks"):
        results = runner.run_checks(specs, default_timeout=float(setting(c, "check_timeout")))
    return [result.to_dict() for result in results]


def preflight_problems(c: Context, selected: Sequence[Layer]) -> dict[str, str]:
    """Per layer, why its live preview cannot run here ("" when its preflight passes).

    Every layer's preflight checks run together through the one runner (as `inv preflight`).
    """
    from blumeops_tasks import preflight as runner

    problems = dict.fromkeys((lay.name for lay in selected), "")
    specs = []
    for lay in selected:
        try:
            specs += list(lay.preflight_checks(c))
        except Exit as exc:
            problems[lay.name] = str(exc.message or f"preflight stopped with exit code {exc.code}")
    with console.status(f"Preflight: {len(specs)} checks"):
        results = runner.run_checks(specs, default_timeout=float(setting(c, "preflight_timeout")))
    for name in problems:
        failing = [r for r in results if r.layer == name and r.status == "fail"]
        if failing and not problems[name]:
            more = f" (+{len(failing) - 1} more failing preflight checks)" if len(failing) > 1 else ""
            problems[name] = f"preflight {failing[0].name}: {failing[0].detail}{more}"
    return problems


def plan_entries(c: Context, selected: Sequence[Layer], *, live: bool, offline: bool) -> list[dict[str, Any]]:
    """One entry per layer: its plan and digest, or the reason no live preview ran."""
    from blumeops_tasks.cross_layer import collect_plans

    if offline:
        reasons = dict.fromkeys((lay.name for lay in selected), "--offline")
    elif live:
        reasons = {}
    else:
        reasons = {name: why for name, why in preflight_problems(c, selected).items() if why}
    runnable = tuple(lay for lay in selected if lay.name not in reasons)
    plans: dict[str, LayerPlan] = {}
    if runnable:
        with console.status(f"Previewing {', '.join(lay.name for lay in runnable)}"):
            plans = {plan.layer: plan for plan in collect_plans(c, runnable)}
    entries: list[dict[str, Any]] = []
    for lay in selected:
        plan = plans.get(lay.name)
        if plan is None:
            entries.append({"layer": lay.name, "ran": False, "reason": reasons.get(lay.name, ""), "plan": None})
        else:
            entries.append({"layer": lay.name, "ran": True, "reason": None, "plan": plan_document(plan)})
    return entries


def plan_document(plan: LayerPlan) -> dict[str, Any]:
    document = plan.to_dict()
    document["digest"] = plan_digest(plan)
    return document


def collect(
    c: Context, *, since: str, live: bool, offline: bool, selected: Sequence[Layer] | None = None
) -> dict[str, Any]:
    """The review as one document (what `--json` prints and `markdown` renders)."""
    from blumeops_tasks.gitops import git_state
    from blumeops_tasks.gitops.tasks import affected_report

    if live and offline:
        console.fail("--live and --offline contradict each other; pass one of them (or neither).")
    chosen = tuple(selected) if selected is not None else layers.in_use(c)
    base = merge_base(c, since)
    status = git_state.read_status(c, repo_root(c))
    checks = offline_results(c, chosen)
    affected = affected_report(c, base)
    names = {lay.name for lay in chosen}
    affected["files"] = [f for f in affected["files"] if f["layer"] is None or f["layer"] in names]
    affected["commands"] = {name: cmds for name, cmds in affected["commands"].items() if name in names}
    failed = any(check["status"] == "fail" for check in checks)
    return {
        "exit_code": 1 if failed else 0,
        "head": status.oid,
        "branch": status.branch,
        "since": since,
        "base": base,
        "checks": checks,
        "affected": {"files": affected["files"], "commands": affected["commands"]},
        "plans": plan_entries(c, chosen, live=live, offline=offline),
    }


# ---- Markdown (pure) ------------------------------------------------------------------------


def cell(text: Any) -> str:
    """A Markdown table cell: pipes escaped, lines joined."""
    return " ".join(str(text).replace("|", "\\|").split()) or " "


def fence(text: str, info: str = "") -> str:
    """A code block whose fence is longer than any backtick run inside it."""
    ticks = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        ticks = max(ticks, run)
    marks = "`" * max(3, ticks + 1)
    return f"{marks}{info}\n{text.rstrip()}\n{marks}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _check_counts(checks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"fail": 0, "warn": 0, "skip": 0, "ok": 0}
    for check in checks:
        counts[str(check["status"])] = counts.get(str(check["status"]), 0) + 1
    return counts


def checks_section(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    counts = _check_counts(checks)
    total = len(checks)
    if not counts["fail"] and not counts["warn"]:
        skipped = f" ({counts['skip']} not checkable here)" if counts["skip"] else ""
        return [f"### Offline checks: {plural(total, 'check')} run, none failed{skipped}", ""]
    parts = [f"{counts['fail']} failed", plural(counts["warn"], "warning")]
    if counts["skip"]:
        parts.append(f"{counts['skip']} not checkable here")
    lines = [f"### Offline checks: {', '.join(parts)} ({total} run)", ""]
    lines += ["| status | layer | check | detail | fix |", "|---|---|---|---|---|"]
    for status in ("fail", "warn"):
        for check in checks:
            if check["status"] == status:
                row = [f"**{status}**" if status == "fail" else status, check["layer"], check["name"]]
                row += [check["detail"], check.get("fix") or ""]
                lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return [*lines, ""]


def _target(item: Mapping[str, Any]) -> str:
    kind, target, hosts = item["kind"], item["target"], item.get("hosts") or []
    if kind == "role":
        return f"role {target} on {', '.join(hosts) or 'no host'}"
    if kind == "host":
        return f"host {target}" if target else f"{item.get('note') or 'hosts'}: {', '.join(hosts)}"
    if kind == "app":
        return f"app {target}"
    if kind == "layer":
        return "whole layer"
    return str(item.get("note") or kind)


def affected_section(affected: Mapping[str, Any]) -> list[str]:
    files = list(affected["files"])
    owned = [f for f in files if f["layer"]]
    lines = ["### Affected targets", ""]
    if not owned:
        lines.append("No layer's files changed: nothing to apply.")
    else:
        lines += ["| file | layer | target |", "|---|---|---|"]
        for item in owned[:SHOWN_FILES]:
            path = f"`{item['path']}`" + (" (uncommitted)" if item.get("uncommitted") else "")
            lines.append(f"| {cell(path)} | {cell(item['layer'])} | {cell(_target(item))} |")
        if len(owned) > SHOWN_FILES:
            lines.append(f"| ... {len(owned) - SHOWN_FILES} more | | |")
    if len(owned) < len(files):
        others = len(files) - len(owned)
        lines += ["", f"{plural(others, 'changed file')} {'belongs' if others == 1 else 'belong'} to no layer."]
    commands = [line for cmds in affected["commands"].values() for line in cmds]
    if commands:
        lines += ["", "After merge, apply with:", "", fence("\n".join(commands), "sh")]
    return [*lines, ""]


def _counts_text(counts: Mapping[str, int]) -> str:
    parts = [f"{counts.get(action, 0)} {action}" for action in ACTIONS if counts.get(action)]
    return ", ".join(parts)


def plan_section(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["### Plans", ""]
    budget = MAX_DIFFS
    for entry in entries:
        layer, plan = entry["layer"], entry["plan"]
        if plan is None:
            lines += [f"#### {layer}: live preview not run: {entry['reason']}", ""]
            continue
        if plan["error"]:
            lines += [f"#### {layer}: preview failed: {' '.join(str(plan['error']).split())}", ""]
            continue
        changes = sum(plan["counts"].values())
        title = f"{changes} changes ({_counts_text(plan['counts'])})" if changes else "no changes"
        lines += [f"#### {layer}: {title}", ""]
        digest = plan.get("digest")
        lines += [f"Plan digest: `{digest}`" if digest else "Plan digest: not available in this version.", ""]
        if plan.get("note"):
            lines += [f"> {' '.join(str(plan['note']).split())}", ""]
        targets = plan["targets"]
        if targets:
            lines += ["| target | " + " | ".join(ACTIONS) + " |", "|---|" + "---|" * len(ACTIONS)]
            for target in targets:
                counts = target["counts"]
                lines.append(f"| {cell(target['target'])} | " + " | ".join(str(counts[a]) for a in ACTIONS) + " |")
            lines.append("")
        detail, budget = _changes_detail(layer, targets, budget)
        lines += detail
    return lines


def _changes_detail(layer: str, targets: Sequence[Mapping[str, Any]], budget: int) -> tuple[list[str], int]:
    items: list[str] = []
    for target in targets:
        for change in target["changes"]:
            line = f"- {change['action']} `{target['target']}`: {' '.join(str(change['resource']).split())}"
            if change.get("detail"):
                line += f" ({' '.join(str(change['detail']).split())})"
            items.append(line)
            diff = str(change.get("diff") or "")
            if not diff:
                continue
            if len(diff) > MAX_DIFF or len(diff) > budget:
                items.append(f"  (diff too long for a comment: `inv plan --layer={layer}` shows it)")
                continue
            budget -= len(diff)
            items += ["", fence(diff, "diff"), ""]
    if not items:
        return [], budget
    return ["<details><summary>changes</summary>", "", *items, "", "</details>", ""], budget


def markdown(document: Mapping[str, Any]) -> str:
    """The whole comment."""
    head = str(document.get("head") or "")[:12] or "(no commit)"
    branch = f" on `{document['branch']}`" if document.get("branch") else ""
    lines = [
        MARKER,
        "## blumeops review",
        "",
        f"HEAD `{head}`{branch} compared with `{document['since']}` (merge base `{str(document['base'])[:12]}`).",
        "",
    ]
    lines += checks_section(document["checks"])
    lines += affected_section(document["affected"])
    lines += plan_section(document["plans"])
    return "\n".join(lines).rstrip() + "\n"


# ---- the task -------------------------------------------------------------------------------


def run(c: Context, *, since: str, live: bool, offline: bool, layer: str | None, as_json: bool) -> None:
    from blumeops_tasks.redaction import redact

    selected = layers.select(layer, c)
    document = collect(c, since=since, live=live, offline=offline, selected=selected)
    if as_json:
        console.print_json(document)
    else:
        sys.stdout.write(redact(markdown(document)))
        sys.stdout.flush()
    if document["exit_code"]:
        raise Exit(code=int(document["exit_code"]))
