"""Root tasks of the loop around the applies: review, rollback, context (definitions only)."""

from __future__ import annotations

from invoke.context import Context

from blumeops_tasks.tasking import task

JSON_HELP = "print JSON instead of text"


@task(
    help={
        "since": "compare HEAD with its merge base with this commit, branch or tag (default HEAD~1; "
        "in a pull request, the target branch, e.g. origin/main)",
        "live": "run every layer's live preview even when its preflight does not pass",
        "offline": "run no live preview (only the offline checks and the affected targets)",
        "layer": "only this layer (default: all)",
        "json": "print the review as one JSON document instead of Markdown",
    }
)
def review(  # noqa: PLR0917  (invoke passes flags as parameters)
    c: Context,
    since: str = "HEAD~1",
    live: bool = False,
    offline: bool = False,
    layer: str | None = None,
    json: bool = False,
) -> None:
    """Markdown for a pull-request comment: failing checks, affected targets with apply commands, plans.

    Live previews run for the layers whose preflight passes (credentials present), or all with --live.
    Exit 1 when an offline check fails, else 0.
    """
    from blumeops_tasks.loop import review as steps

    steps.run(c, since=since, live=live, offline=offline, layer=layer, as_json=json)


@task(
    help={
        "layer": "the layer whose files to restore (tailnet, hosts, argocd)",
        "to": "where to: N (the Nth newest entry of `inv history --layer=L`, 1 = newest), "
        "an entry's time or its prefix (2026-11-26T04:20), or a commit, branch or tag",
        "yes": "commit without asking (needed without a terminal)",
        "preview": "after the commit, run the layer's live preview of what applying it would change "
        "(--no-preview: show only the files)",
    }
)
def rollback(c: Context, layer: str, to: str, yes: bool = False, preview: bool = True) -> None:
    """One commit restoring only a layer's files to an earlier state; push and apply stay yours.

    Refuses with uncommitted changes in the layer's files. Shows the plan the commit implies and the
    commands that push and apply it (through the usual guard, lock and journal).
    """
    from blumeops_tasks.loop import rollback as steps

    steps.run(c, layer_name=layer, to=to, yes=yes, preview=preview)


@task(
    help={
        "json": JSON_HELP,
        "live": "ask the cluster for each app's sync state when it is reachable (--no-live: from git only)",
    }
)
def context(c: Context, json: bool = False, live: bool = True) -> None:
    """One page for a newcomer or an AI assistant: layers, hosts, apps, tailnet, pending, checks, commands.

    Each layer with its native files, hosts with their roles and playbooks, apps with their paths and
    sync state, tailnet tags and devices, pending changes, the last applies, failing checks, and the
    exact commands for the common jobs. Read-only; exit 0.
    """
    from blumeops_tasks.loop import context as steps

    steps.run(c, as_json=json, live=live)


ROOT_TASKS = (review, rollback, context)
