"""The tailnet's guard-then-preview workflow, shared by its tasks and by `inv plan`.

Imported inside the tasks, never at `inv --list` time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from invoke.context import Context

from blumeops_tasks import console
from blumeops_tasks import preflight as runner
from blumeops_tasks.config import setting, state_dir
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.tailnet import checks, pulumi_cli
from blumeops_tasks.tailnet.preview_parse import LAYER as NAME
from blumeops_tasks.tailnet.preview_parse import plan_from_output


def gate(c: Context) -> list[runner.CheckResult]:
    """The offline checks (the program's run under mocks is cached) and the preflight checks, together."""
    specs = [*checks.offline_checks(c), *checks.preflight_checks(c)]
    return runner.run_checks(specs, default_timeout=float(setting(c, "preflight_timeout")))


def saved_plan_path(c: Context, stack: str, digest: str | None = None) -> Path:
    """Where `pulumi preview --save-plan` writes the update plan that `pulumi up --plan` applies: under
    the state dir, keyed by the plan digest when there is one, else one file per stack."""
    return state_dir(c) / "tailnet" / "plans" / (f"{stack}-{digest}.json" if digest else f"{stack}.json")


def refusal(results: list[runner.CheckResult], verb: str) -> str:
    """One sentence: the first failing check, its fix, and how many more failed."""
    failing = [r for r in results if r.status == "fail"]
    first = failing[0]
    more = f" (and {len(failing) - 1} more failing checks)" if len(failing) > 1 else ""
    fix = f"; {first.fix}" if first.fix else ""
    return f"Refusing to {verb} the tailnet: {first.name}: {first.detail}{fix}{more}."


def run_preview(c: Context, target: pulumi_cli.Target, save_plan: Path | None = None) -> LayerPlan:
    """`pulumi preview --json --refresh` parsed into the plan model (never raises for a failed preview);
    with `save_plan`, Pulumi's update plan is written there (an older one is removed first)."""
    if save_plan is not None:
        try:
            save_plan.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # plans hold the resources' inputs
            save_plan.unlink(missing_ok=True)
        except OSError as exc:
            console.fail(f"Cannot keep the update plan at {save_plan} ({exc.strerror}); fix the state directory.")
    command = pulumi_cli.preview_command(target, save_plan)
    with console.status(f"pulumi preview --refresh ({target.stack})"):
        result = pulumi_cli.capture(c, command, pulumi_cli.env_for(target))
    return plan_from_output(result.stdout or "", result.stderr or "", int(result.exited or 0), target.stack)


def preview_plan(c: Context) -> LayerPlan:
    """The layer's plan for `inv plan`: the guard, then the preview; a refusal becomes the error and
    the guard's warnings (house rules) join the plan's note."""
    results = gate(c)
    if runner.exit_code(results):
        return LayerPlan(NAME, error=refusal(results, "preview"))
    plan = run_preview(c, checks.target(c))
    warnings = [f"warning: {r.name}: {r.detail}" for r in results if r.status == "warn"]
    return replace(plan, note="; ".join(part for part in (plan.note, *warnings) if part)) if warnings else plan


def guard_or_fail(c: Context, verb: str) -> None:
    """Show the guard's table and stop with one sentence when any check fails; warnings (house rules)
    are shown one line each and do not stop."""
    results = gate(c)
    if runner.exit_code(results):
        runner.render(f"Tailnet guard before {verb}", results)
        console.fail(refusal(results, verb))
    for result in results:
        if result.status == "warn":
            console.note(f"warning: {result.name}: {result.detail}" + (f"; {result.fix}" if result.fix else ""))


def describe_counts(plan: LayerPlan) -> str:
    """'update 2, delete 1' for the actions that occur."""
    return ", ".join(f"{action} {n}" for action, n in plan.counts().items() if n)
