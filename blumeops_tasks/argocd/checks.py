"""The argocd layer's checks and plan: offline checks of argocd/, preflight of the operator's
cluster access, and the read-only plan. Loaded when `inv check/preflight/plan` run, not by `inv --list`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks.argocd import flows
from blumeops_tasks.config import repo_root, setting
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, ok, warn

NAME = "argocd"


def _cfg(c: Context, key: str) -> Any:
    return setting(c, f"{NAME}.{key}")


# --- offline checks -------------------------------------------------------------------------


def _app_check(problems: list[str], detail: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        if problems:
            return failed("; ".join(problems), "fix the Application manifest as described")
        return ok(detail)

    return run


def _render_check(directory: Path, kube_version: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        from blumeops_tasks.argocd import kustomize

        try:
            objects = kustomize.render(directory)
        except kustomize.RenderError as exc:
            return failed(str(exc), "fix the kustomization (docs/argocd.md lists the supported fields)")
        if not objects:
            return failed(f"{directory.name}: renders no objects", "list the manifests under resources:")
        problems = kustomize.validate_objects(objects, kube_version)
        if problems:
            return failed("; ".join(problems), f"fix the objects to match the Kubernetes {kube_version} schemas")
        return ok(f"{len(objects)} objects valid for Kubernetes {kube_version}")

    return run


def offline_checks(c: Context) -> list[CheckSpec]:
    from blumeops_tasks.argocd import apps

    repo = repo_root(c)
    base = str(_cfg(c, "dir"))
    manifests_root = f"{base}/{apps.MANIFESTS_DIR}"
    try:
        local = apps.load(repo, base)
    except apps.ManifestError as exc:
        message = str(exc)
        return [CheckSpec(NAME, "applications", lambda: failed(message, "fix the YAML"))]
    specs: list[CheckSpec] = []
    if not local:
        specs.append(CheckSpec(NAME, "applications", lambda: failed(f"no Applications under {base}/")))
    for app in local:
        found = apps.problems(
            app,
            repo=repo,
            repo_url=str(_cfg(c, "repo_url")),
            branch=str(_cfg(c, "branch")),
            namespace=str(_cfg(c, "namespace")),
            manifests_root=manifests_root,
        )
        policy = "auto-sync" if app.automated else "manual sync"
        detail = f"{app.path} @ {app.target_revision}, {policy}"
        specs.append(CheckSpec(NAME, f"app {app.name}", _app_check(found, detail)))
    pairing = apps.pairing_problems(local, repo, manifests_root)
    specs.append(CheckSpec(NAME, "apps and manifests pair up", _app_check(pairing, "every directory has an app")))
    kube_version = str(_cfg(c, "kube_version"))
    mdir = repo / manifests_root
    for directory in sorted(p for p in mdir.iterdir() if p.is_dir()) if mdir.is_dir() else []:
        specs.append(CheckSpec(NAME, f"render {directory.name}", _render_check(directory, kube_version)))
    return specs


# --- preflight ------------------------------------------------------------------------------


class _Probe:
    """Talks to the API once for all preflight checks (they run concurrently)."""

    def __init__(self, c: Context) -> None:
        self.target = flows.target(c)
        self._lock = threading.Lock()
        self._result: dict[str, Outcome] | None = None

    def result(self) -> dict[str, Outcome]:
        with self._lock:
            if self._result is None:
                self._result = self._probe()
            return self._result

    def _probe(self) -> dict[str, Outcome]:
        from blumeops_tasks.argocd import client

        t = self.target
        skipped = "not checked: an earlier check failed"
        out: dict[str, Outcome] = {}
        files = client.kubeconfig_files(t.kubeconfig)
        if not any(f.is_file() for f in files):
            fix = "set KUBECONFIG or blumeops.argocd.kubeconfig to the cluster's kubeconfig"
            out["kubeconfig"] = failed(f"no kubeconfig at {t.kubeconfig}", fix)
            return out
        out["kubeconfig"] = ok(t.kubeconfig)
        try:
            names = client.contexts(t.kubeconfig)
        except client.ArgoApiError as exc:
            out["context"] = failed(exc.message, "repair the kubeconfig")
            return out
        if t.context not in names:
            out["context"] = failed(
                f"context {t.context!r} not in the kubeconfig (has: {', '.join(names) or 'none'})",
                "set blumeops.argocd.context (INVOKE_BLUMEOPS_ARGOCD_CONTEXT) to the homelab cluster's context",
            )
            return out
        out["context"] = ok(t.context)
        try:
            with client.ArgoApi(t) as api:
                served = api.resource_names()
                out["api reachable"] = ok(api.server)
        except client.ArgoApiError as exc:
            if exc.status is None:
                out["api reachable"] = failed(exc.message, "check the network path to the API server")
                return out
            out["api reachable"] = ok(f"answered HTTP {exc.status}")
            if exc.status in (401, 403):
                out["credentials"] = failed(exc.message, "log in again / refresh the kubeconfig credentials")
            elif exc.status == 404:
                out["credentials"] = ok("accepted")
                out["application CRD"] = failed(
                    "argoproj.io/v1alpha1 is not served", "install ArgoCD, or pick the cluster that runs it"
                )
            else:
                out["credentials"] = warn(skipped)
                out["application CRD"] = failed(exc.message, "retry when the API server is healthy")
            return out
        out["credentials"] = ok("accepted")
        if "applications" in served:
            out["application CRD"] = ok("argoproj.io/v1alpha1 applications served")
        else:
            out["application CRD"] = failed(
                "argoproj.io/v1alpha1 is served without applications", "install or upgrade ArgoCD's CRDs"
            )
        return out


PREFLIGHT_NAMES = ("kubeconfig", "context", "api reachable", "credentials", "application CRD")


def preflight_checks(c: Context) -> list[CheckSpec]:
    probe = _Probe(c)

    def check(key: str) -> Callable[[], Outcome]:
        def run() -> Outcome:
            return probe.result().get(key) or failed("not checked: an earlier check failed", "fix that first")

        return run

    return [CheckSpec(NAME, key, check(key)) for key in PREFLIGHT_NAMES]


# --- plan -----------------------------------------------------------------------------------


def plan(c: Context) -> LayerPlan:
    from blumeops_tasks.argocd import app_state, apps, client

    local = apps.load(repo_root(c), str(_cfg(c, "dir")))
    try:
        with client.ArgoApi(flows.target(c)) as api:
            live = {str((o.get("metadata") or {}).get("name")): o for o in api.list()}
    except client.ArgoApiError as exc:
        return LayerPlan(NAME, error=exc.message)
    namespace = str(_cfg(c, "namespace"))
    targets: list[TargetPlan] = []
    for app in local:
        obj = live.get(app.name)
        if obj is None:
            how = "kubectl apply -f argocd/root.yaml" if app.root else "sync the root app"
            change = Change("create", f"Application/{namespace}/{app.name}", detail=f"not in the cluster; {how}")
            targets.append(TargetPlan(app.name, (change,)))
        else:
            targets.append(app_state.changes(obj))
    return LayerPlan(
        NAME,
        tuple(targets),
        note="as ArgoCD last compared; inv argocd.diff --app=NAME refreshes first",
    )
