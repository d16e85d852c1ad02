"""`argocd.history` and `argocd.rollback`: gather from git and the Kubernetes API, decide
(`history`), print; the rollback runs inside the GitOps guard and journal like every apply.

Imported by the tasks when they run, never by `inv --list`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from invoke.context import Context

from blumeops_tasks import console
from blumeops_tasks.argocd import flows
from blumeops_tasks.argocd import history as hist
from blumeops_tasks.argocd.app_state import auto_sync_enabled
from blumeops_tasks.argocd.history import Deployment
from blumeops_tasks.config import repo_root
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan

UNDONE_SHOWN = 10


def history_rows(history: Sequence[Deployment], subjects: Mapping[str, str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for index, d in enumerate(history):
        revision = ", ".join(r[:12] for r in d.revisions) or "-"
        subject = subjects.get(d.revision, "")
        rows.append(
            [
                f"{d.id}{' (current)' if index == 0 else ''}",
                d.deployed_at or "-",
                f"{revision} {subject}".strip(),
                "; ".join(hist.source_label(s) for s in d.sources) or "-",
                d.initiated_by or "-",
            ]
        )
    return rows


def _subjects(c: Context, history: Sequence[Deployment]) -> dict[str, str]:
    from blumeops_tasks.argocd import revisions

    root = repo_root(c)
    return {d.revision: revisions.subject(c, root, d.revision) for d in history if d.revision}


def run_history(c: Context, app: str | None = None, json: bool = False) -> None:
    """The Application's deployments from `status.history`, newest first; the first is current."""
    local = flows.resolve_app(c, app)
    with flows.connect(c) as api, console.status(f"Reading {local.name}"):
        obj = flows.live_app(api, local)
    history = hist.deployments(obj)
    now = hist.current(history)
    if json:
        console.print_json(
            {
                "app": local.name,
                "namespace": str(flows.cfg(c, "namespace")),
                "current": now.id if now else None,
                "auto_sync": auto_sync_enabled(obj),
                "history": [d.to_dict(d is now) for d in history],
            }
        )
        return
    if not history:
        console.out(f"{local.name}: no deployments recorded yet (ArgoCD records one per sync that deploys).")
        return
    console.table(
        f"{local.name}: deployment history (newest first)",
        ["id", "deployed at", "revision", "source", "initiated by"],
        history_rows(history, _subjects(c, history)),
        ["green"] + [None] * (len(history) - 1),
    )
    if auto_sync_enabled(obj):
        console.note(f"{local.name} auto-syncs: ArgoCD refuses a rollback while auto-sync is enabled")


# --- rollback -------------------------------------------------------------------------------


def check_revisions(c: Context, name: str, target: Deployment) -> tuple[list[str], str]:
    """The target's commits of the configured repo, each refused unless this clone has it and it is
    on `<remote>/<branch>` (the branch's tip or an ancestor: a commit that was pushed, never a local
    one or another branch's); and the branch's tip."""
    from blumeops_tasks.argocd import revisions

    root = repo_root(c)
    remote, branch = str(flows.cfg(c, "remote")), str(flows.cfg(c, "branch"))
    wanted = hist.git_revisions(target, str(flows.cfg(c, "repo_url")))
    try:
        tip = revisions.remote_tip(c, root, remote, branch)
        for sha in wanted:
            if not revisions.is_sha(sha):
                console.fail(
                    f"History id {target.id} of {name!r} records revision {sha!r}, not a full commit SHA; "
                    f"roll back in git instead (git revert, push, inv argocd.sync --app={name})."
                )
            if not revisions.on_branch(c, root, sha, tip, remote=remote, branch=branch):
                console.fail(
                    f"Commit {sha[:12]} (history id {target.id} of {name!r}) is not on {remote}/{branch}, the "
                    f"branch ArgoCD reads; only a pushed commit of that branch is rolled back to: git fetch "
                    f"{remote} if it is there, else pick another id (inv argocd.history --app={name})."
                )
    except revisions.RevisionError as exc:
        console.fail(str(exc))
    return wanted, tip


def undone_commits(c: Context, target: Deployment, now: Deployment | None) -> list[str]:
    """`sha subject` of the commits between the target and what runs now that touch the target's
    paths (what the rollback takes back), when this clone has both."""
    from blumeops_tasks.argocd import revisions
    from blumeops_tasks.gitops import git_state

    if now is None or not revisions.is_sha(now.revision) or not revisions.is_sha(target.revision):
        return []
    root = repo_root(c)
    paths = hist.source_paths(target, str(flows.cfg(c, "repo_url")))
    if not paths or not revisions.subject(c, root, now.revision):
        return []
    commits = git_state.log(c, root, f"{target.revision}..{now.revision}", paths)
    return [f"{commit.sha[:12]} {commit.subject}" for commit in commits]


def describe(deployment: Deployment | None) -> str:
    if deployment is None:
        return "nothing recorded"
    revision = ", ".join(r[:12] for r in deployment.revisions) or "no revision"
    return f"{revision} (history id {deployment.id}, deployed {deployment.deployed_at or 'at an unknown time'})"


def rollback_plan(name: str, namespace: str, target: Deployment, tip: str) -> LayerPlan:
    detail = f"roll back to {', '.join(r[:12] for r in target.revisions) or 'its source'} (history id {target.id})"
    note = f"{name}: deploys history id {target.id}, not the branch tip {tip[:12]}"
    return LayerPlan(
        flows.NAME,
        (TargetPlan(name, (Change("update", f"Application/{namespace}/{name}", detail=detail),)),),
        note=note,
    )


def show_preview(c: Context, name: str, target: Deployment, now: Deployment | None, tip: str) -> LayerPlan:
    from blumeops_tasks import plan as plan_model

    remote, branch = str(flows.cfg(c, "remote")), str(flows.cfg(c, "branch"))
    console.out(f"{name}: now running {describe(now)}")
    console.out(f"{name}: rolling back to {describe(target)}")
    for source in target.sources:
        console.out(f"  source {hist.source_label(source)}")
    undone = undone_commits(c, target, now)
    if undone:
        console.out(f"  {len(undone)} commit(s) touching its files are taken back:")
        for line in undone[:UNDONE_SHOWN]:
            console.out(f"    {line}")
        if len(undone) > UNDONE_SHOWN:
            console.out(f"    ... and {len(undone) - UNDONE_SHOWN} more")
    console.note(
        f"{remote}/{branch} is at {tip[:12]}: after the rollback {name} is OutOfSync with git until the next "
        f"inv argocd.sync --app={name}; to keep the old state, revert in git and push"
    )
    plan = rollback_plan(name, str(flows.cfg(c, "namespace")), target, tip)
    plan_model.render([plan])
    return plan


def refuse_rollback(obj: Mapping[str, Any], name: str) -> None:
    why = hist.refusal(obj)
    if why == hist.AUTO_SYNC_REFUSAL:
        console.fail(
            f"ArgoCD refuses this: {why} ({name} has spec.syncPolicy.automated), since auto-sync would deploy "
            f"the branch tip again; roll back in git instead (git revert, push), or turn auto-sync off in "
            f"git, sync the parent app, then retry."
        )
    if why:
        console.fail(f"ArgoCD refuses this: {why} ({name}); nothing to roll back.")


def run_rollback(
    c: Context,
    *,
    app: str | None = None,
    to: str | None = None,
    prune: bool = False,
    timeout: str | None = None,
    yes: bool = False,
) -> None:
    """Roll an app back to a deployment of its history, as the argocd server does, guarded and
    journaled; exit 1 unless it ends Healthy at the revision asked for."""
    wait = flows.parse_timeout(timeout, flows.cfg(c, "sync_timeout"))
    ident = hist.parse_id(to)
    if to is None or ident is None:
        console.fail(f"--to must be a history id (a whole number from inv argocd.history --app=NAME), not {to!r}.")
    local = flows.resolve_app(c, app)
    name = local.name
    with flows.connect(c) as api:
        flows.preflight_api(api)
        current = flows.live_app(api, local)
        refuse_rollback(current, name)
        flows.refuse_if_busy(current, name)
        history = hist.deployments(current)
        target = hist.find(history, ident)
        if target is None:
            console.fail(hist.unknown_id_message(name, str(to), history))
        if not target.sources:
            console.fail(
                f"History id {ident} of {name!r} records no source (deployed by Argo CD 0.11 or older), so "
                f"ArgoCD cannot roll back to it; sync to its revision instead: inv argocd.sync --app={name} "
                f"--revision=SHA."
            )
        now = hist.current(history)
        if now is not None and now.id == target.id:
            console.note(f"{name}: history id {ident} is what runs now; this deploys it again")
        expected, tip = check_revisions(c, name, target)
        if not expected:
            console.note(f"{name}: history id {ident} deploys no commit of this repo; ArgoCD alone vouches for it")
        from blumeops_tasks.argocd.layer import LAYER
        from blumeops_tasks.gitops.session import applying

        with applying(c, LAYER, task="argocd.rollback", targets=[name], allow_dirty=False) as record:
            record.set_plan(show_preview(c, name, target, now, tip))
            revision = ", ".join(r[:12] for r in target.revisions) or "its recorded source"
            record.note(f"rollback to history id {ident} ({revision})")
            console.confirm(
                f"Roll {name} back to {revision} (history id {ident})?", yes=yes, action=f"roll back {name}"
            )
            user = flows.operator_name(c)
            latest = flows._guard(api.get, name) or current
            refuse_rollback(latest, name)  # auto-sync switched on while the operator read the preview

            def body(obj: Mapping[str, Any], rv: str) -> dict[str, Any]:
                return hist.rollback_patch(
                    rv,
                    obj,
                    target,
                    username=user,
                    prune=prune,
                    reason=f"inv argocd.rollback to history id {ident} by {user}",
                )

            flows.request_operation(api, name, latest, body, "rollback")
            console.out(f"{name}: rollback to history id {ident} requested; watching")
            final = flows.wait_for_sync(api, name, wait, False, expect_synced=False)
            summary = flows.report(final, name, False, expected, expect_synced=False)
            record.note(
                f"rollback to history id {ident} ({revision}); {summary}; not at "
                f"{flows.cfg(c, 'remote')}/{flows.cfg(c, 'branch')} {tip[:12]} until the next argocd.sync"
            )
            record.rolled_back(expected[0] if expected else "")  # never "succeeded": HEAD is not what runs
