"""What the argocd tasks do: gather from git and the Kubernetes API, decide (app_state), print.

Imported by the tasks when they run, never by `inv --list`.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from invoke.context import Context

from blumeops_tasks import console
from blumeops_tasks.argocd import app_state, apps
from blumeops_tasks.argocd.client import PLURAL, ArgoApi, ArgoApiError, Target, kubeconfig_path
from blumeops_tasks.config import repo_root, setting
from blumeops_tasks.plan import LayerPlan

NAME = "argocd"
CONFLICT_RETRIES = 3


def cfg(c: Context, key: str) -> Any:
    return setting(c, f"{NAME}.{key}")


def target(c: Context) -> Target:
    return Target(
        kubeconfig=kubeconfig_path(str(cfg(c, "kubeconfig") or "")),
        context=str(cfg(c, "context")),
        namespace=str(cfg(c, "namespace")),
        timeout=float(cfg(c, "request_timeout")),
    )


def local_apps(c: Context) -> list[apps.LocalApp]:
    try:
        return apps.load(repo_root(c), str(cfg(c, "dir")))
    except apps.ManifestError as exc:
        console.fail(f"{exc}; fix the manifest (inv check --layer=argocd shows every problem).")


def resolve_app(c: Context, name: str | None) -> apps.LocalApp:
    """The local Application named `name`; unknown names get one sentence with the closest match."""
    known = local_apps(c)
    if not name:
        console.fail(f"Name the app with --app; known apps: {', '.join(sorted(apps.names(known)))}.")
    found = apps.find(known, name)
    if found is None:
        console.fail(apps.unknown_app_message(name, apps.names(known)))
    return found


def connect(c: Context) -> ArgoApi:
    try:
        return ArgoApi(target(c))
    except ArgoApiError as exc:
        console.fail(exc.message)


def _guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ArgoApiError as exc:
        console.fail(exc.message)


def _local_head(c: Context) -> str:
    from blumeops_tasks.argocd import revisions

    return revisions.head(c, repo_root(c))


# --- status ---------------------------------------------------------------------------------


def status_rows(
    local: list[apps.LocalApp], live: list[Mapping[str, Any]], head: str, repo_url: str
) -> list[dict[str, Any]]:
    """One row per app, local order first, then live apps git does not know. A live spec that
    differs from git (repoURL, targetRevision, path) is a `Diverged` condition."""
    by_name = {str((a.get("metadata") or {}).get("name")): a for a in live}
    rows: list[dict[str, Any]] = []
    for app in local:
        obj = by_name.pop(app.name, None)
        if obj is None:
            rows.append(
                {
                    "app": app.name,
                    "sync": "Missing",
                    "health": "Missing",
                    "revision": "",
                    "head": head,
                    "at_head": False,
                    "operation": "",
                    "auto_sync": app.automated,
                    "conditions": [{"type": "NotInCluster", "message": "not in the cluster"}],
                    "diverged": [],
                }
            )
        else:
            row = app_state.status_row(app_state.view(obj), head)
            row["diverged"] = app_state.divergence(obj, app.sources, repo_url)
            if row["diverged"]:
                row["conditions"].append({"type": "Diverged", "message": "; ".join(row["diverged"])})
            rows.append(row)
    for name in sorted(by_name):
        row = app_state.status_row(app_state.view(by_name[name]), head)
        row["diverged"] = []
        row["conditions"].append({"type": "NotInGit", "message": f"no argocd/apps/{name}.yaml"})
        rows.append(row)
    return rows


# --- diff -----------------------------------------------------------------------------------


def live_app(api: ArgoApi, app: apps.LocalApp) -> dict[str, Any]:
    obj: dict[str, Any] | None = _guard(api.get, app.name)
    if obj is None:
        hint = (
            "bootstrap it with kubectl apply -f argocd/root.yaml"
            if app.root
            else ("sync the root app first: inv argocd.sync --app=blumeops")
        )
        console.fail(f"Application {app.name!r} does not exist in namespace {api.target.namespace!r}; {hint}.")
    return obj


def refresh(api: ArgoApi, name: str, current: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """Ask ArgoCD to re-compare with git and wait (watching) until it has; returns the refreshed app."""
    stale = {_version(current)}
    stale.add(_version(_guard(api.patch, name, app_state.refresh_patch(), f"request a refresh of {name!r}")))
    deadline = time.monotonic() + timeout
    for obj in _guard_iter(api.watch(name, deadline)):
        if app_state.refresh_done(obj, stale):
            return dict(obj)
    return console.fail(
        f"ArgoCD did not finish refreshing {name!r} within {timeout:g}s; check the application controller "
        f"(kubectl -n {api.target.namespace} logs deploy/argocd-application-controller) and retry."
    )


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _guard_iter(iterator: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from iterator
    except ArgoApiError as exc:
        console.fail(exc.message)


def diff_plan(obj: Mapping[str, Any], diverged: list[str], namespace: str) -> LayerPlan:
    """The app's pending changes as the shared plan model (one target: the app)."""
    v = app_state.view(obj)
    note = f"{v.name}: {v.sync_status}, {v.health}, compared at {v.reconciled_at or 'unknown'}"
    return LayerPlan(NAME, (app_state.changes(obj, diverged, namespace),), note=note)


def show_diff(obj: Mapping[str, Any], namespace: str) -> LayerPlan:
    from blumeops_tasks import plan as plan_model

    plan = diff_plan(obj, [], namespace)
    plan_model.render([plan])
    return plan


def diverged_hint(c: Context, app: apps.LocalApp) -> str:
    """How to put a diverged live Application back to what git says."""
    if app.root:
        return f"kubectl apply -f {app.file}"
    root = next((a for a in local_apps(c) if a.root), None)
    return f"inv argocd.sync --app={root.name}" if root else f"kubectl apply -f {app.file}"


def _diff_blockers(obj: Mapping[str, Any], name: str) -> None:
    blockers = app_state.blocking_conditions(obj)
    if blockers:
        console.fail(f"ArgoCD cannot compare {name!r} with git: {'; '.join(blockers)}.")


# --- sync -----------------------------------------------------------------------------------


def deploy_revision(c: Context, revision: str | None) -> tuple[str, str]:
    """The full SHA to deploy (given or HEAD), refused unless it is on the remote branch ArgoCD reads;
    and that branch's tip (what ArgoCD resolves the branch to)."""
    from blumeops_tasks.argocd import revisions

    repo = repo_root(c)
    remote, branch = str(cfg(c, "remote")), str(cfg(c, "branch"))
    try:
        sha = revisions.expand(c, repo, revision) if revision else revisions.head(c, repo)
        if not sha:
            console.fail(f"{repo} is not a git repository; argocd.sync deploys committed, pushed work only.")
        url = revisions.remote_url(c, repo, remote)
        repo_url = str(cfg(c, "repo_url"))
        if not revisions.same_repo(url, repo_url):
            console.note(
                f"remote {remote!r} is {url or 'not set'}, but ArgoCD reads {repo_url}; "
                f"the pushed check below is only as good as that match (set blumeops.argocd.remote)"
            )
        tip = revisions.ensure_pushed(c, repo, sha, remote, branch)
        if not revision and tip != sha:
            console.note(
                f"{remote}/{branch} is at {tip[:12]}, ahead of your HEAD {sha[:12]}: ArgoCD deploys {tip[:12]} "
                f"(the diff below is ArgoCD's own comparison with it); git pull to see what it holds"
            )
    except revisions.RevisionError as exc:
        console.fail(str(exc))
    return sha, tip


def live_revision(c: Context, obj: Mapping[str, Any], name: str) -> str:
    """The commit a diverged live Application's own targetRevision names on the configured remote."""
    from blumeops_tasks.argocd import revisions

    sources = app_state.live_sources(obj)
    source = next((s for s in sources if s.get("path")), sources[0] if sources else {})
    rev = str(source.get("targetRevision") or "HEAD")
    url = str(source.get("repoURL") or "")
    if len(rev) == app_state.FULL_SHA_LENGTH and all(ch in "0123456789abcdef" for ch in rev):
        return rev
    if not revisions.same_repo(url, str(cfg(c, "repo_url"))):
        console.fail(
            f"{name} reads {url!r}, not this repo, so which commit it deploys cannot be checked; "
            f"pass --revision=SHA or put the Application back as git has it."
        )
    try:
        return revisions.resolve_remote(c, repo_root(c), str(cfg(c, "remote")), rev)
    except revisions.RevisionError as exc:
        console.fail(f"{exc.args[0].rstrip('.')} (the live targetRevision of {name}); pass --revision=SHA.")


def preflight_api(api: ArgoApi) -> None:
    """API reachable with the configured context and the Application CRD served."""
    served = _guard(api.resource_names)
    if PLURAL not in served:
        console.fail(
            f"The API server of context {api.target.context!r} does not serve argoproj.io/v1alpha1 "
            f"applications; install ArgoCD or pick the right context (blumeops.argocd.context)."
        )


def refuse_if_busy(obj: Mapping[str, Any], name: str) -> None:
    v = app_state.view(obj)
    if v.busy:
        phase = v.phase or "Requested"
        console.fail(
            f"Another operation is already in progress on {name!r} (phase {phase}); wait for it "
            f"(inv argocd.status) or terminate it in ArgoCD, then retry."
        )


def request_sync(api: ArgoApi, name: str, fresh: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """Patch `.operation` with a resourceVersion precondition; on 409 re-read and retry a few times."""
    return request_operation(api, name, fresh, lambda _obj, rv: app_state.sync_patch(rv, **options), "sync")


def request_operation(
    api: ArgoApi,
    name: str,
    fresh: Mapping[str, Any],
    body_for: Callable[[Mapping[str, Any], str], Mapping[str, Any]],
    what: str,
) -> dict[str, Any]:
    """Patch `body_for(app, resourceVersion)` (an `.operation`) with the resourceVersion as a
    precondition, as the argocd server's SetAppOperation does; on 409 re-read (refused when an
    operation started meanwhile) and retry, CONFLICT_RETRIES attempts at most."""
    obj: Mapping[str, Any] = fresh
    for attempt in range(1, CONFLICT_RETRIES + 1):
        refuse_if_busy(obj, name)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        try:
            return api.patch(name, body_for(obj, rv), f"request a {what} of {name!r}")
        except ArgoApiError as exc:
            if exc.status != 409:
                console.fail(exc.message)
            if attempt == CONFLICT_RETRIES:
                console.fail(
                    f"The {what} of {name!r} was not requested: the Application kept changing while it was "
                    f"being patched (409 Conflict {CONFLICT_RETRIES} times); retry in a moment."
                )
            console.note(f"{name}: changed since it was read (409 Conflict); re-reading and retrying")
            latest = _guard(api.get, name)
            if latest is None:
                console.fail(f"Application {name!r} disappeared while requesting the {what}.")
            obj = latest
    raise AssertionError("unreachable")


def operator_name(c: Context) -> str:
    """`operation.initiatedBy.username`: blumeops.argocd.username, else <login>@blumeops."""
    return str(cfg(c, "username") or "") or f"{getpass.getuser()}@blumeops"


def wait_for_sync(
    api: ArgoApi, name: str, timeout: float, dry_run: bool, *, expect_synced: bool = True
) -> dict[str, Any]:
    """Watch the Application until the operation is final, printing each change of state."""
    deadline = time.monotonic() + timeout
    last_line = ""
    last: dict[str, Any] | None = None
    for obj in _guard_iter(api.watch(name, deadline)):
        last = obj
        line = app_state.progress_line(obj)
        if line != last_line:
            console.out(line)
            last_line = line
        outcome = app_state.sync_verdict(obj, dry_run=dry_run, expect_synced=expect_synced)
        if outcome.verdict != "waiting":
            return obj
    stuck = app_state.sync_verdict(last or {}, dry_run=dry_run, expect_synced=expect_synced).summary
    v = app_state.view(last or {})
    message = f": {v.phase_message}" if v.phase_message else ""
    return console.fail(
        f"Timed out after {timeout:g}s waiting for {name!r}, stuck at {stuck}{message}; "
        f"check it with inv argocd.status (the operation may still finish)."
    )


def report(
    obj: Mapping[str, Any], name: str, dry_run: bool, expected: str | Sequence[str], *, expect_synced: bool = True
) -> str:
    """Per-resource results, then the verdict: stops with exit 1 on failure or when ArgoCD deployed
    another revision than the one(s) asked for; else returns the summary."""
    rows = app_state.synced_resources(obj)
    if rows:
        console.table(
            f"{name}: per-resource results",
            ["resource", "status", "message"],
            [[r["resource"], r["status"], r["message"]] for r in rows],
            ["red" if r["status"] == "SyncFailed" else None for r in rows],
        )
    outcome = app_state.sync_verdict(obj, dry_run=dry_run, expect_synced=expect_synced)
    if outcome.verdict == "failed":
        failures = "; ".join(outcome.failures) or "no resource reported a message"
        console.fail(f"{name}: {outcome.summary}; failing resources: {failures}.")
    deployed = app_state.deployed_revisions(obj)
    missing = [r for r in ([expected] if isinstance(expected, str) else expected) if r not in deployed]
    if missing:
        got = ", ".join(r[:12] for r in deployed) or "no revision"
        asked = ", ".join(r[:12] for r in missing)
        console.fail(
            f"{name}: ArgoCD reports {got} {'compared' if dry_run else 'deployed'}, not {asked} as asked; "
            f"someone changed the Application or pushed meanwhile: check inv argocd.status and sync again."
        )
    console.out(f"{name}: {outcome.summary}", style="green")
    return outcome.summary


def run_status(c: Context, json: bool = False) -> None:
    """One row per app: sync status, health, deployed revision against local HEAD, operation, conditions."""
    local = local_apps(c)
    with connect(c) as api, console.status("Reading Applications"):
        live = _guard(api.list)
    head = _local_head(c)
    rows = status_rows(local, live, head, str(cfg(c, "repo_url")))
    if json:
        console.print_json({"namespace": str(cfg(c, "namespace")), "head": head, "apps": rows})
        return
    table_rows = [
        [
            r["app"],
            r["sync"],
            r["health"],
            app_state.revision_vs_head(r["revision"], head),
            r["operation"] or "-",
            "; ".join(f"{x['type']}: {x['message']}" for x in r["conditions"]) or "-",
        ]
        for r in rows
    ]
    styles: list[str | None] = [
        "green" if r["sync"] == "Synced" and r["health"] == "Healthy" else "yellow" for r in rows
    ]
    console.table("ArgoCD apps", ["app", "sync", "health", "revision", "operation", "conditions"], table_rows, styles)


def run_diff(c: Context, app: str | None = None, json: bool = False) -> None:
    """Refresh one app, then list out-of-sync and to-be-pruned resources, and a live Application that
    differs from git. Exit 0 none, 2 changes, 1 error (`--json`: the shared plan document)."""
    from blumeops_tasks import plan as plan_model

    local = resolve_app(c, app)
    with connect(c) as api:
        current = live_app(api, local)
        with console.status(f"Refreshing {local.name}"):
            obj = refresh(api, local.name, current, float(cfg(c, "refresh_timeout")))
    _diff_blockers(obj, local.name)
    diverged = app_state.divergence(obj, local.sources, str(cfg(c, "repo_url")))
    if diverged and not json:
        console.note(f"{local.name}: the live Application differs from git; {diverged_hint(c, local)} puts it back")
    plan_model.report([diff_plan(obj, diverged, str(cfg(c, "namespace")))], as_json=json)


def parse_timeout(value: str | None, default: Any) -> float:
    """A positive, finite number of seconds, or one sentence and exit 1."""
    import math

    text = value if value is not None else default
    try:
        seconds = float(text)
    except (TypeError, ValueError):
        console.fail(f"--timeout must be a number of seconds, not {text!r}.")
    if not math.isfinite(seconds) or seconds <= 0:
        console.fail(f"--timeout must be a positive number of seconds, not {text!r}.")
    return seconds


def run_sync(
    c: Context,
    *,
    app: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    revision: str | None = None,
    timeout: str | None = None,
    yes: bool = False,
    allow_diverged: bool = False,
) -> None:
    """Deploy an app: preflight, diff, confirm, sync, watch until Synced and Healthy, check the
    deployed revision. Exit 1 on failure."""
    wait = parse_timeout(timeout, cfg(c, "sync_timeout"))
    local = resolve_app(c, app)
    name = local.name
    sha, tip = deploy_revision(c, revision)
    with connect(c) as api:
        preflight_api(api)
        current = live_app(api, local)
        refuse_if_busy(current, name)
        diverged = app_state.divergence(current, local.sources, str(cfg(c, "repo_url")))
        override = ""
        if diverged and not allow_diverged:
            console.fail(
                f"{name}: the live Application differs from git ({'; '.join(diverged)}), so a sync would not "
                f"deploy what git says; put it back with {diverged_hint(c, local)}, or re-run with --allow-diverged."
            )
        if diverged:
            override = f"--allow-diverged: {'; '.join(diverged)}"
            console.note(f"{name}: {override}; deploying the live Application as it is")
        expected = sha if revision else (live_revision(c, current, name) if diverged else tip)
        with console.status(f"Refreshing {name}"):
            obj = refresh(api, name, current, float(cfg(c, "refresh_timeout")))
        _diff_blockers(obj, name)
        plan = show_diff(obj, str(cfg(c, "namespace")))
        to_prune = [r for r in app_state.out_of_sync(obj) if r.requires_pruning]
        if to_prune and not prune:
            console.note(f"{len(to_prune)} resource(s) would be pruned only with --prune; they stay as they are")
        view = app_state.view(obj)
        if view.automated:
            console.note(f"{name} auto-syncs; this sync runs now instead of waiting for the next reconcile")
        what = "dry-run sync" if dry_run else "sync"
        pinned = f" at {sha[:12]}" if revision else f" ({view.target_revision or 'target revision'})"
        from blumeops_tasks.argocd.layer import LAYER
        from blumeops_tasks.gitops.session import applying

        # The GitOps guard is absolute for argocd: ArgoCD deploys what is pushed, never the work tree.
        with applying(c, LAYER, task="argocd.sync", targets=[name], allow_dirty=False) as record:
            record.set_plan(plan)
            record.note(override)
            if not plan.has_changes and not revision and view.sync_status == "Synced" and view.health == "Healthy":
                record.mark("no-changes")  # journaled like the other layers' empty plans
                console.out(
                    f"{name}: already Synced and Healthy at {view.sync_revision[:8]}; nothing to sync.", style="green"
                )
                return
            console.confirm(f"{what.capitalize()} {name}{pinned}?", yes=yes, action=f"{what} {name}")
            user = operator_name(c)
            latest = _guard(api.get, name) or obj
            changed = app_state.divergence(latest, local.sources, str(cfg(c, "repo_url")))
            if changed and not allow_diverged:  # edited while the operator read the plan
                console.fail(f"{name}: the live Application changed meanwhile ({'; '.join(changed)}); nothing synced.")
            request_sync(
                api,
                name,
                latest,
                username=user,
                revision=sha if revision else "",
                prune=prune,
                dry_run=dry_run,
                reason=f"inv argocd.sync by {user}",
            )
            console.out(f"{name}: {what} requested; watching")
            final = wait_for_sync(api, name, wait, dry_run)
            summary = report(final, name, dry_run, expected)
            record.note("; ".join(m for m in (override, summary) if m))
