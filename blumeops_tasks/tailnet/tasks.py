"""Tailnet: Tailscale ACLs, device tags and DNS through Pulumi (pulumi/).

Every pulumi run is preceded by the guard: the policy parses, its tags are declared, its devices
are inventory hosts, the lockout guard holds, and the environment is ready (CLI, backend, stack,
credentials, passphrase). Nothing reaches pulumi when any of these fails.
"""

from __future__ import annotations

import os

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, shell
from blumeops_tasks import plan as plan_model
from blumeops_tasks import preflight as runner
from blumeops_tasks.config import setting
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.redaction import redact
from blumeops_tasks.tailnet import checks, pulumi_cli
from blumeops_tasks.tailnet.preview_parse import LAYER as NAME
from blumeops_tasks.tailnet.preview_parse import plan_from_output
from blumeops_tasks.tasking import task

JSON_HELP = "print the plan as JSON (the shared plan model) instead of tables"


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


def _guard_or_fail(c: Context, verb: str) -> None:
    """Show the guard's table and stop with one sentence when any check fails."""
    results = gate(c)
    if runner.exit_code(results):
        runner.render(f"Tailnet guard before {verb}", results)
        console.fail(refusal(results, verb))


def describe_counts(plan: LayerPlan) -> str:
    """'update 2, delete 1' for the actions that occur."""
    return ", ".join(f"{action} {n}" for action, n in plan.counts().items() if n)


@task(help={"json": JSON_HELP})
def preview(c: Context, json: bool = False) -> None:
    """Preview tailnet changes with pulumi preview, after the policy guard. Exit 0 none, 2 changes, 1 error."""
    if json:
        plan = preview_plan(c)
        console.print_json(plan_model.to_json([plan]))
    else:
        _guard_or_fail(c, "preview")
        plan = run_preview(c, checks.target(c))
        plan_model.render([plan])
    if plan.error and not json:
        raise Exit(redact(plan.error), code=1)
    code = plan_model.exit_code([plan])
    if code:
        raise Exit(code=code)


@task(
    help={
        "yes": "apply without asking (required when there is no terminal to ask on)",
        "allow_dirty": "apply even with uncommitted changes under pulumi/ (journaled as dirty)",
    }
)
def up(c: Context, yes: bool = False, allow_dirty: bool = False) -> None:
    """Apply the tailnet: guard, preview, confirm (default No), pulumi up, re-check."""
    from blumeops_tasks.gitops.session import applying
    from blumeops_tasks.tailnet.layer import LAYER

    target = checks.target(c)
    with applying(c, LAYER, task="tailnet.up", targets=[target.stack], allow_dirty=allow_dirty) as record:
        _guard_or_fail(c, "apply")
        plan = run_preview(c, target)
        record.set_plan(plan)
        plan_model.render([plan])
        if plan.error:
            console.fail(f"Nothing applied: {plan.error}.")
        if not plan.has_changes:
            record.mark("no-changes")
            console.out(f"Nothing to apply: the tailnet already matches pulumi/ (stack {target.stack}).")
            return
        counts = describe_counts(plan)
        console.confirm(
            f"Apply these changes ({counts}) to the tailnet (stack {target.stack})?",
            yes=yes,
            action=f"apply the tailnet stack {target.stack}",
        )
        result = shell.run(c, pulumi_cli.up_command(target), env=pulumi_cli.env_for(target), warn=True)
        if result.exited:
            code = int(result.exited)
            console.fail(
                f"pulumi up failed with exit code {code} ({pulumi_cli.exit_meaning(code)}); the tailnet may be "
                f"partly changed: run `inv tailnet.preview` to see what remains.",
                code=code,
            )
        after = run_preview(c, target)
        record.note(f"applied {counts}")
        if after.error or after.has_changes:
            left = after.error or f"still pending: {describe_counts(after)}"
            console.error(f"Applied changes ({counts}), but the re-check does not show a clean tailnet: {left}.")
            raise Exit(code=1)
        console.out(f"Applied changes ({counts}) to stack {target.stack}; re-check: no changes pending.", style="green")


@task
def init(c: Context) -> None:
    """Create the local state directory and the stack (passphrase secrets). Safe to re-run."""
    target = checks.target(c)
    cli = checks.cli_outcome(c, target)
    if cli.status == "fail":
        console.fail(f"Cannot create the stack: {cli.detail}; {cli.fix}.")
    backend = pulumi_cli.file_backend_path(target.backend_url, target.project_dir)
    if backend is not None:
        backend.mkdir(parents=True, exist_ok=True)
        passphrase = checks.passphrase_outcome(target, os.environ)
        if passphrase.status == "fail":
            console.fail(f"Cannot create the stack: {passphrase.detail}; {passphrase.fix}.")
    if checks.stack_outcome(c, target).status == "ok":
        console.out(f"Stack {target.stack} already exists ({target.backend_url}).")
        return
    shell.run(c, pulumi_cli.init_command(target), env=pulumi_cli.env_for(target))
    console.out(f"Created stack {target.stack}; commit pulumi/Pulumi.{target.stack}.yaml (it holds the salt).")


TASKS = (preview, up, init)
