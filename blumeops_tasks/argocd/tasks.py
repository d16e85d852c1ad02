"""ArgoCD apps through the Kubernetes API: status, diff, sync (no argocd binary needed).

Thin task definitions; the work lives in `flows` (imported when a task runs, so `inv --list`
never loads the plan model, YAML or the kubernetes client).
"""

from __future__ import annotations

from invoke.context import Context

from blumeops_tasks.tasking import task

APP_HELP = "the Application name (as in argocd/apps/<name>.yaml, or the root app)"
JSON_HELP = "print JSON instead of tables"


@task(help={"json": JSON_HELP})
def status(c: Context, json: bool = False) -> None:
    """One row per app: sync status, health, deployed revision against local HEAD, operation, conditions."""
    from blumeops_tasks.argocd import flows

    flows.run_status(c, json=json)


@task(help={"app": APP_HELP, "json": JSON_HELP})
def diff(c: Context, app: str | None = None, json: bool = False) -> None:
    """Refresh one app, list out-of-sync, to-be-pruned resources and a live spec that differs from git.
    Exit 0 none, 2 changes, 1 error."""
    from blumeops_tasks.argocd import flows

    flows.run_diff(c, app=app, json=json)


@task(
    help={
        "app": APP_HELP,
        "prune": "also delete resources that are no longer in git (default: keep them)",
        "dry_run": "ask ArgoCD for a dry-run sync (kubectl apply --dry-run on the controller); changes nothing",
        "revision": "deploy this commit (full or short SHA; must be pushed) instead of the branch tip",
        "timeout": "seconds to wait for the sync to finish, a positive number (default: blumeops.argocd.sync_timeout)",
        "yes": "do not ask for confirmation (required without a terminal)",
        "allow_diverged": "sync even though the live Application's repoURL, targetRevision or path differs from "
        "git (journaled)",
        "plan": "apply only if the preview's plan digest is this one (printed by every preview and `inv plan`)",
    }
)
def sync(  # noqa: PLR0917  (invoke passes flags as parameters)
    c: Context,
    app: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    revision: str | None = None,
    timeout: str | None = None,
    yes: bool = False,
    allow_diverged: bool = False,
    plan: str | None = None,
) -> None:
    """Deploy an app: preflight, diff, confirm, sync, watch until Synced and Healthy at the commit asked for."""
    from blumeops_tasks.argocd import flows
    from blumeops_tasks.gitops.session import expect_plan

    expect_plan(c, plan)  # checked by the apply record when the diff's plan is set

    flows.run_sync(
        c,
        app=app,
        prune=prune,
        dry_run=dry_run,
        revision=revision,
        timeout=timeout,
        yes=yes,
        allow_diverged=allow_diverged,
    )


@task(help={"app": APP_HELP, "json": JSON_HELP})
def history(c: Context, app: str | None = None, json: bool = False) -> None:
    """The app's deployments as ArgoCD recorded them (id, revision, time, source, who), newest first."""
    from blumeops_tasks.argocd import history_flows

    history_flows.run_history(c, app=app, json=json)


@task(
    help={
        "app": APP_HELP,
        "to": "the history id to go back to (the id column of inv argocd.history)",
        "prune": "also delete resources that the older revision does not have (default: keep them)",
        "timeout": "seconds to wait for the rollback to finish, a positive number "
        "(default: blumeops.argocd.sync_timeout)",
        "yes": "do not ask for confirmation (required without a terminal)",
    }
)
def rollback(  # noqa: PLR0917  (invoke passes flags as parameters)
    c: Context,
    app: str | None = None,
    to: str | None = None,
    prune: bool = False,
    timeout: str | None = None,
    yes: bool = False,
) -> None:
    """Deploy an older entry of the app's history again, as argocd app rollback does (refused while it
    auto-syncs); journaled. The app stays OutOfSync with git until the next argocd.sync."""
    from blumeops_tasks.argocd import history_flows

    history_flows.run_rollback(c, app=app, to=to, prune=prune, timeout=timeout, yes=yes)


TASKS = (status, diff, sync, history, rollback)
