"""Tailnet: Tailscale ACLs, device tags and DNS through Pulumi (pulumi/).

Every pulumi run is preceded by the guard: the policy parses and the program runs under mocks
(failures), the house rules on them (tags declared, devices in the inventory, the lockout guard:
warnings unless blumeops.lint.strict), and the environment is ready (CLI, backend, stack,
credentials, passphrase). Nothing reaches pulumi when any of these fails.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, shell
from blumeops_tasks.tasking import task

if TYPE_CHECKING:
    from blumeops_tasks.tailnet.pulumi_cli import Target

# The checks, the CLI wrapper, the parser and the plan model are imported inside the tasks:
# `inv --list` never pays for them.

JSON_HELP = "print the plan as JSON (the shared plan model) instead of tables"


@task(help={"json": JSON_HELP})
def preview(c: Context, json: bool = False) -> None:
    """Preview tailnet changes with pulumi preview, after the policy guard. Exit 0 none, 2 changes, 1 error."""
    from blumeops_tasks import plan as plan_model
    from blumeops_tasks.tailnet import checks
    from blumeops_tasks.tailnet.workflow import guard_or_fail, preview_plan, run_preview

    if json:
        plan = preview_plan(c)  # a guard refusal becomes the plan's error, inside the JSON
    else:
        guard_or_fail(c, "preview")  # the guard's table, then one sentence
        plan = run_preview(c, checks.target(c))
    plan_model.report([plan], as_json=json)


@task(
    help={
        "yes": "apply without asking (required when there is no terminal to ask on)",
        "allow_dirty": "apply even with uncommitted changes in the program's directory (journaled as dirty)",
        "plan": "apply only if the preview's plan digest is this one (printed by every preview and `inv plan`)",
    }
)
def up(c: Context, yes: bool = False, allow_dirty: bool = False, plan: str | None = None) -> None:
    """Apply the tailnet: guard, preview (saving Pulumi's plan), confirm (default No), pulumi up --plan, re-check."""
    from blumeops_tasks.gitops.session import applying
    from blumeops_tasks.tailnet import checks, pulumi_cli
    from blumeops_tasks.tailnet.layer import LAYER
    from blumeops_tasks.tailnet.workflow import describe_counts, guard_or_fail, run_preview, saved_plan_path

    target = stack_or_fail(c, "apply")
    with applying(c, LAYER, task="tailnet.up", targets=[target.stack], allow_dirty=allow_dirty, plan=plan) as record:
        record.snapshot()  # the guard, the preview and pulumi up read the journaled commit's program
        target = checks.target(c)
        guard_or_fail(c, "apply")
        saved = saved_plan_path(c, target.stack)
        preview = run_preview(c, target, save_plan=saved)
        counts = describe_counts(preview)
        if not record.review(
            preview,
            question=f"Apply these changes ({counts}) to the tailnet (stack {target.stack})?",
            action=f"apply the tailnet stack {target.stack}",
            yes=yes,
            unchanged=f"Nothing to apply: the tailnet already matches the program (stack {target.stack}).",
        ):
            return
        if not saved.is_file():
            console.fail(
                f"pulumi preview saved no update plan at {saved}, so nothing was applied; "
                "upgrade the pulumi CLI (`mise install`) to one that supports --save-plan."
            )
        result = shell.run(c, pulumi_cli.up_command(target, saved), env=pulumi_cli.env_for(target), warn=True)
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
    from blumeops_tasks.tailnet import checks, pulumi_cli

    target = stack_or_fail(c, "create")
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
    console.out(f"Created stack {target.stack}; commit Pulumi.{target.stack}.yaml (it holds the salt).")


def stack_or_fail(c: Context, verb: str) -> Target:
    """The target, or one sentence when no stack is chosen (nothing to name in a journal or a command)."""
    from blumeops_tasks.tailnet import checks

    target = checks.target(c)
    if not target.stack:
        problem = checks.no_stack_problem(target.project_dir)
        console.fail(f"Cannot {verb} the tailnet stack: {problem}; set it in invoke.yaml.")
    return target


TASKS = (preview, up, init)
