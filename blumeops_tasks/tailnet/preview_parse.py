"""`pulumi preview --json` -> the shared plan model. Pure: text and data in, LayerPlan out.

The document (see shared/reference/pulumi.md):
`{steps: [{op, urn, oldState, newState, diffReasons, replaceReasons, detailedDiff}],
  diagnostics: [{urn, message, severity}], changeSummary: {...}}`.

* One Change per resource: the replace sequence (replace / create-replacement / delete-replaced)
  collapses into one "replace"; same/read/refresh/discard steps are not changes.
* The preview runs with `--refresh`: a `refresh` step whose state differs (old vs new outputs) is a
  resource changed outside Pulumi (say, retagged in the admin console). The change that puts it
  back (the `update` step diffing the refreshed state against the program) says so in its detail,
  and the plan's note names every drifted resource.
* The stack resource and providers are bookkeeping, not tailnet changes, and are left out.
* The ACL's diff is a unified diff of the pretty-printed policies (old from the state, new from
  the program), never the escaped JSON string; other resources show their changed inputs.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from blumeops_tasks.plan import Action, Change, LayerPlan, PlanBuilder
from blumeops_tasks.tailnet.policy import PolicyError, parse_hujson, pretty
from blumeops_tasks.tailnet.pulumi_cli import exit_meaning

LAYER = "tailnet"
ACL_TYPE = "tailscale:index/acl:Acl"
OPS: dict[str, Action] = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "import": "create",
    "import-replacement": "replace",
}
# `inputs` keys the engine adds itself.
INTERNAL_KEYS = frozenset({"__defaults", "__meta"})
MAX_ERRORS = 3


def parse_urn(urn: str) -> tuple[str, str]:
    """(type token, name) from `urn:pulumi:stack::project::[parent$]type::name`."""
    parts = urn.split("::")
    if len(parts) < 4:
        return "", urn
    return parts[2].rsplit("$", 1)[-1], "::".join(parts[3:])


def short_type(token: str) -> str:
    """`tailscale:index/deviceTags:DeviceTags` -> `DeviceTags`."""
    return token.rsplit(":", 1)[-1] if token else "resource"


def is_bookkeeping(token: str) -> bool:
    return token == "pulumi:pulumi:Stack" or token.startswith("pulumi:providers:")


def _state(step: Mapping[str, Any], which: str) -> Mapping[str, Any]:
    state = step.get(which) or {}
    return state if isinstance(state, Mapping) else {}


def _inputs(step: Mapping[str, Any], which: str) -> dict[str, Any]:
    inputs = _state(step, which).get("inputs") or {}
    return {k: v for k, v in inputs.items() if k not in INTERNAL_KEYS} if isinstance(inputs, Mapping) else {}


def _acl_text(step: Mapping[str, Any], which: str) -> str | None:
    state = _state(step, which)
    for part in ("inputs", "outputs"):
        value = (state.get(part) or {}).get("acl")
        if isinstance(value, str):
            return value
    return None


def _policy_lines(text: str | None) -> tuple[list[str], bool]:
    """Pretty-printed policy lines, and whether the text parsed."""
    if text is None:
        return [], True
    try:
        return pretty(parse_hujson(text, "acl")).splitlines(keepends=True), True
    except PolicyError:
        return [line if line.endswith("\n") else line + "\n" for line in text.splitlines()], False


def acl_diff(old: str | None, new: str | None) -> tuple[str, str]:
    """(unified diff of the pretty-printed policies, note). Comment-only changes diff the raw text."""
    old_lines, _ = _policy_lines(old)
    new_lines, _ = _policy_lines(new)
    note = ""
    if old_lines == new_lines and old != new and old is not None and new is not None:
        old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
        note = "comments or formatting only"
    text = "".join(difflib.unified_diff(old_lines, new_lines, "policy (tailnet now)", "policy (this repo)"))
    return text, note


def _value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def inputs_diff(step: Mapping[str, Any], action: Action) -> str:
    """`- key: old` / `+ key: new` lines for the inputs that change."""
    old, new = _inputs(step, "oldState"), _inputs(step, "newState")
    if action == "create":
        keys = sorted(new)
    elif action == "delete":
        keys = sorted(old)
    else:
        detailed = step.get("detailedDiff") or {}
        paths = list(detailed) if detailed else list(step.get("diffReasons") or [])
        keys = sorted({path.split(".", 1)[0].split("[", 1)[0] for path in paths})
    lines: list[str] = []
    for key in keys:
        if key in old and action != "create":
            lines.append(f"- {key}: {_value(old[key])}")
        if key in new and action != "delete":
            lines.append(f"+ {key}: {_value(new[key])}")
    return "\n".join(lines) + ("\n" if lines else "")


def _detail(step: Mapping[str, Any], action: Action) -> str:
    if action == "replace":
        reasons = step.get("replaceReasons") or step.get("diffReasons") or []
        return f"replaced because {', '.join(reasons)} changed" if reasons else "replaced"
    if action == "update":
        reasons = step.get("diffReasons") or list(step.get("detailedDiff") or {})
        return f"changes {', '.join(reasons)}" if reasons else ""
    return "import of an existing resource" if step.get("op") == "import" else ""


def change_for(step: Mapping[str, Any], action: Action) -> Change:
    token, name = parse_urn(str(step.get("urn", "")))
    token = token or str(_state(step, "newState").get("type") or _state(step, "oldState").get("type") or "")
    resource = f"{short_type(token)} {name}"
    detail = _detail(step, action)
    if token == ACL_TYPE:
        diff, note = acl_diff(
            None if action == "create" else _acl_text(step, "oldState"),
            None if action == "delete" else _acl_text(step, "newState"),
        )
        detail = "; ".join(part for part in (detail, note) if part)
        return Change(action, resource, diff, detail)
    return Change(action, resource, inputs_diff(step, action), detail)


def drifted_keys(step: Mapping[str, Any]) -> list[str]:
    """For a `refresh` step: the output keys the refresh found changed outside Pulumi (sorted)."""
    old, new = (_state(step, which).get("outputs") or {} for which in ("oldState", "newState"))
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return []
    keys = (set(old) | set(new)) - INTERNAL_KEYS - {"id"}
    found = {key for key in keys if old.get(key) != new.get(key)}
    found |= {path.split(".", 1)[0].split("[", 1)[0] for path in step.get("detailedDiff") or {}}
    return sorted(found | set(step.get("diffReasons") or []))


def errors_of(document: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for diag in document.get("diagnostics") or []:
        if isinstance(diag, Mapping) and diag.get("severity") == "error":
            message = " ".join(str(diag.get("message", "")).split())
            if message and message not in found:
                found.append(message)
    return found


def drift_note(drift: Mapping[str, list[str]]) -> str:
    """'refreshed: changed outside Pulumi since the last apply: DeviceTags indri (tags)'."""
    if not drift:
        return ""
    shown = []
    for urn, keys in drift.items():
        token, name = parse_urn(urn)
        shown.append(f"{short_type(token)} {name} ({', '.join(keys)})")
    return f"refreshed: changed outside Pulumi since the last apply: {'; '.join(shown)}"


def parse_preview(document: Mapping[str, Any], stack: str) -> LayerPlan:
    """A preview document as a LayerPlan with one target (the stack); error diagnostics -> error."""
    builder = PlanBuilder(LAYER)
    builder.target(stack)
    actions: dict[str, Action] = {}
    steps: dict[str, Mapping[str, Any]] = {}
    drift: dict[str, list[str]] = {}
    for step in document.get("steps") or []:
        action = OPS.get(str(step.get("op")))
        urn = str(step.get("urn", ""))
        if is_bookkeeping(parse_urn(urn)[0]):
            continue
        if step.get("op") == "refresh" and (keys := drifted_keys(step)):
            drift[urn] = keys
        if action is None:
            continue
        previous = actions.get(urn)
        if previous is None:
            actions[urn], steps[urn] = action, step
        elif "replace" in (previous, action):
            actions[urn] = "replace"
            if step.get("op") == "replace":  # the one step carrying both old and new state
                steps[urn] = step
    for urn, action in actions.items():
        change = change_for(steps[urn], action)
        if urn in drift:
            outside = f"changed outside Pulumi: {', '.join(drift[urn])}"
            detail = "; ".join(part for part in (outside, change.detail) if part)
            change = Change(change.action, change.resource, change.diff, detail)
        builder.add(stack, change)
    plan = builder.build(note=drift_note(drift))
    errors = errors_of(document)
    if errors:
        more = f" (+{len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        return LayerPlan(LAYER, plan.targets, error="; ".join(errors[:MAX_ERRORS]) + more)
    return plan


def plan_from_output(stdout: str, stderr: str, exited: int, stack: str) -> LayerPlan:
    """The plan from a finished `pulumi preview --json` run, whatever happened to it."""
    document: Any = None
    text = stdout.strip()
    if text:
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            document = None
    if isinstance(document, Mapping):
        plan = parse_preview(document, stack)
        if exited and not plan.error:
            return LayerPlan(LAYER, plan.targets, error=_failure(exited, stderr))
        return plan
    return LayerPlan(LAYER, error=_failure(exited, stderr) if exited else "pulumi preview printed no JSON")


def _failure(exited: int, stderr: str) -> str:
    tail = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = f": {tail[-1]}" if tail else ""
    return f"pulumi preview failed with exit code {exited} ({exit_meaning(exited)}){last}"
