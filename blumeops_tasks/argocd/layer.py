"""The argocd layer: an app-of-apps in argocd/, driven through the Kubernetes API (no argocd binary).

Offline checks: every Application is complete, points at the configured repo, an existing path and
the main branch; every app's source renders with the tool that owns it (`kubectl kustomize`, helm)
and validates against the Kubernetes schemas or a CRD in the repo; no Secret values are committed;
our own conventions (finalizer, layout) are house rules. Preflight: kubeconfig, context, API
reachable, credentials accepted, Application CRD served. Plan: each app's out-of-sync resources
as ArgoCD last compared them (`inv argocd.diff --app=NAME` refreshes first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.context import Context

from blumeops_tasks.argocd import tasks as argocd_tasks
from blumeops_tasks.layer import Layer

if TYPE_CHECKING:  # loaded only when a check, preflight or plan runs
    from blumeops_tasks.plan import LayerPlan
    from blumeops_tasks.preflight import CheckSpec

NAME = "argocd"

DEFAULTS: dict[str, Any] = {
    # The git URL ArgoCD reads; every Application's repoURL must be exactly this.
    "repo_url": "https://forge.ops.eblu.me/eblume/blumeops.git",
    # The branch every Application tracks, and the remote (in this clone) that ArgoCD reads.
    "branch": "main",
    "remote": "origin",
    # Where ArgoCD and its Applications live, and which kube context reaches that cluster.
    "namespace": "argocd",
    "context": "minikube-indri",
    # Kubeconfig file(s); empty means $KUBECONFIG, else ~/.kube/config.
    "kubeconfig": "",
    # The Application tree in this repo (root.yaml, apps/, manifests/).
    "dir": "argocd",
    # The command that renders a kustomization directory (given as its last argument):
    # kubectl's built-in kustomize, or "kustomize build" for those who pin kustomize (mise.toml).
    "kustomize": "kubectl kustomize",
    # Kubernetes version whose schemas validate the rendered manifests offline.
    "kube_version": "1.33",
    # Seconds: each API request, waiting for a refresh, waiting for a sync.
    "request_timeout": 10.0,
    "refresh_timeout": 60.0,
    "sync_timeout": 300.0,
    # Who a sync is recorded as (operation.initiatedBy.username); empty means <login>@blumeops.
    "username": "",
}


def offline_checks(c: Context) -> Sequence[CheckSpec]:
    from blumeops_tasks.argocd import checks

    return checks.offline_checks(c)


def scoped_checks(c: Context, changed: Sequence[str]) -> Sequence[CheckSpec]:
    from blumeops_tasks.argocd import checks

    return checks.scoped_checks(c, list(changed))


def preflight_checks(c: Context) -> Sequence[CheckSpec]:
    from blumeops_tasks.argocd import checks

    return checks.preflight_checks(c)


def plan(c: Context) -> LayerPlan:
    from blumeops_tasks.argocd import checks

    return checks.plan(c)


def _collection() -> Collection:
    ns = Collection(NAME)
    for t in argocd_tasks.TASKS:
        ns.add_task(t)
    return ns


def _targets(c: Context) -> list[str]:
    """The Applications under the argocd dir, by name (none when their manifests cannot be read)."""
    from blumeops_tasks.argocd import apps
    from blumeops_tasks.config import repo_root, setting

    try:
        return sorted(apps.names(apps.load(repo_root(c), str(setting(c, "argocd.dir")))))
    except apps.ManifestError:
        return []


LAYER = Layer(
    name=NAME,
    help="Kubernetes workloads through ArgoCD",
    collection=_collection(),
    path_settings=("dir",),
    offline_checks=offline_checks,
    scoped_checks=scoped_checks,
    preflight_checks=preflight_checks,
    plan=plan,
    targets=_targets,
    apply_task="argocd.sync",
    defaults=DEFAULTS,
    env=("KUBECONFIG",),
)
