"""The tailnet's guard-then-preview workflow, shared by its tasks and by `inv plan`.

Imported inside the tasks, never at `inv --list` time.
"""

from __future__ import annotations

from invoke.context import Context

from blumeops_tasks import console
from blumeops_tasks import preflight as runner
from blumeops_tasks.config import setting
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.tailnet import checks, pulumi_cli
from blumeops_tasks.tailnet.preview_parse import LAYER as NAME
from blumeops_tasks.tailnet.preview_parse import plan_from_output


def gate(c: Context) -> list[runner.CheckResult]:
    """The policy guard and the preflight checks, run together."""
    specs = [*checks.policy_checks(c), *checks.preflight_checks(c)]
    return runner.run_checks(specs, default_timeout=float(setting(c, "preflight_timeout")))


def refusal(results: list[runner.CheckResult], verb: str) -> str:
    """One sentence: the first failing check, its fix, and how many more failed."""
    failing = [r for r in results if r.status == "fail"]
    first = failing[0]
    more = f" (and {len(failing) - 1} more failing checks)" if len(failing) > 1 else ""
    fix = f"; {first.fix}" if first.fix else ""
    return f"Refusing to {verb} the tailnet: {first.name}: {first.detail}{fix}{more}."


def run_preview(c: Context, target: pulumi_cli.Target) -> LayerPlan:
    """`pulumi preview --json` parsed into the plan model (never raises for a failed preview)."""
    with console.status(f"pulumi preview ({target.stack})"):
        result = pulumi_cli.capture(c, pulumi_cli.preview_command(target), pulumi_cli.env_for(target))
    return plan_from_output(result.stdout or "", result.stderr or "", int(result.exited or 0), target.stack)


def preview_plan(c: Context) -> LayerPlan:
    """The layer's plan for `inv plan`: the guard, then the preview; a refusal becomes the error."""
    results = gate(c)
    if runner.exit_code(results):
        return LayerPlan(NAME, error=refusal(results, "preview"))
    return run_preview(c, checks.target(c))


def guard_or_fail(c: Context, verb: str) -> None:
    """Show the guard's table and stop with one sentence when any check fails."""
    results = gate(c)
    if runner.exit_code(results):
        runner.render(f"Tailnet guard before {verb}", results)
        console.fail(refusal(results, verb))


def describe_counts(plan: LayerPlan) -> str:
    """'update 2, delete 1' for the actions that occur."""
    return ", ".join(f"{action} {n}" for action, n in plan.counts().items() if n)
