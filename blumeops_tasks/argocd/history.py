"""An Application's deployment history (`status.history[]`) and the rollback operation, as pure
decisions over the dicts the Kubernetes API returns. No I/O here.

ArgoCD appends one entry per sync that deployed (`RevisionHistory`: id, revision or revisions,
deployedAt, deployStartedAt, source or sources, initiatedBy) and keeps the newest
`spec.revisionHistoryLimit` (default 10). The newest entry is what runs now.

A rollback mirrors the argocd server's `Rollback` (server/application/application.go): refused
while auto-sync is enabled, the entry found by id, then a sync operation to that entry's
revision(s) and source(s), with the Application's own sync options and the `apply` strategy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from blumeops_tasks.argocd.app_state import _get, _s, auto_sync_enabled, operation_patch
from blumeops_tasks.argocd.revisions import same_repo

AUTO_SYNC_REFUSAL = "rollback cannot be initiated when auto-sync is enabled"


@dataclass(frozen=True)
class Deployment:
    """One entry of `status.history`, as ArgoCD stored it (`raw`) and as the tasks show it."""

    id: int
    revisions: tuple[str, ...]
    deployed_at: str
    started_at: str
    sources: tuple[Mapping[str, Any], ...]
    initiated_by: str
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def revision(self) -> str:
        return self.revisions[0] if self.revisions else ""

    @property
    def multi_source(self) -> bool:
        return bool(self.raw.get("sources"))

    def to_dict(self, current: bool) -> dict[str, Any]:
        raw = self.raw
        return {
            "id": self.id,
            "current": current,
            "revision": _s(raw.get("revision")) or None,
            "revisions": [_s(r) for r in raw.get("revisions") or []],
            "deployed_at": self.deployed_at or None,
            "deploy_started_at": self.started_at or None,
            "source": dict(raw["source"]) if isinstance(raw.get("source"), Mapping) else None,
            "sources": [dict(s) for s in raw.get("sources") or [] if isinstance(s, Mapping)],
            "initiated_by": dict(raw["initiatedBy"]) if isinstance(raw.get("initiatedBy"), Mapping) else None,
        }


def _initiator(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return ""
    if raw.get("automated"):
        return "auto-sync"
    return _s(raw.get("username"))


def _entry(raw: Mapping[str, Any]) -> Deployment | None:
    try:
        ident = int(raw.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # not an entry ArgoCD wrote; nothing to roll back to
    revisions = [_s(raw.get("revision"))] if raw.get("revision") else []
    revisions += [_s(r) for r in raw.get("revisions") or [] if r]
    many = raw.get("sources")
    sources = (
        tuple(s for s in many if isinstance(s, Mapping))
        if isinstance(many, list) and many
        else ((raw["source"],) if isinstance(raw.get("source"), Mapping) and raw["source"] else ())
    )
    return Deployment(
        id=ident,
        revisions=tuple(revisions),
        deployed_at=_s(raw.get("deployedAt")),
        started_at=_s(raw.get("deployStartedAt")),
        sources=sources,
        initiated_by=_initiator(raw.get("initiatedBy")),
        raw=raw,
    )


def deployments(app: Mapping[str, Any]) -> list[Deployment]:
    """The history, newest first (highest id first; ids only grow)."""
    found = [_entry(raw) for raw in _get(app, "status", "history") or [] if isinstance(raw, Mapping)]
    return sorted((d for d in found if d is not None), key=lambda d: d.id, reverse=True)


def current(history: Sequence[Deployment]) -> Deployment | None:
    """The deployment running now: the newest entry."""
    return history[0] if history else None


def find(history: Sequence[Deployment], ident: int) -> Deployment | None:
    return next((d for d in history if d.id == ident), None)


def parse_id(text: str | None) -> int | None:
    """A history id from `--to`, or None when it is not a whole number."""
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def unknown_id_message(name: str, ident: str, history: Sequence[Deployment]) -> str:
    if not history:
        return f"Application {name!r} has no deployment history yet, so there is nothing to roll back to."
    known = ", ".join(str(d.id) for d in sorted(history, key=lambda d: d.id))
    return (
        f"Application {name!r} has no deployment with id {ident}; known ids: {known} "
        f"(inv argocd.history --app={name} lists them)."
    )


def source_label(source: Mapping[str, Any]) -> str:
    """`repo path@targetRevision`, or `chart version` for a chart from a Helm repository."""
    repo = _s(source.get("repoURL"))
    if source.get("chart"):
        return f"{repo} chart {_s(source.get('chart'))} {_s(source.get('targetRevision'))}".rstrip()
    path = _s(source.get("path")) or "."
    return f"{repo} {path}@{_s(source.get('targetRevision')) or 'HEAD'}"


def git_revisions(deployment: Deployment, repo_url: str) -> list[str]:
    """The entry's revisions that are commits of the configured repo (chart versions and other
    repositories' commits are left to ArgoCD). A single-source entry pairs `revision` with
    `source`, a multi-source one `revisions[i]` with `sources[i]`."""
    if deployment.multi_source:
        pairs = zip(deployment.raw.get("revisions") or [], deployment.sources, strict=False)
        return [_s(rev) for rev, src in pairs if rev and _in_repo(src, repo_url)]
    source = deployment.sources[0] if deployment.sources else {}
    return [deployment.revision] if deployment.revision and _in_repo(source, repo_url) else []


def _in_repo(source: Mapping[str, Any], repo_url: str) -> bool:
    """A git source of the configured repo (not a chart from a Helm repository)."""
    return not source.get("chart") and same_repo(_s(source.get("repoURL")), repo_url)


def source_paths(deployment: Deployment, repo_url: str) -> list[str]:
    """The paths in the configured repo the entry deployed (for the commits a rollback undoes)."""
    return [_s(s.get("path")) for s in deployment.sources if s.get("path") and _in_repo(s, repo_url)]


def refusal(app: Mapping[str, Any]) -> str | None:
    """Why ArgoCD's server would refuse a rollback before looking at the history, or None."""
    if _get(app, "metadata", "deletionTimestamp"):
        return "application is deleting"
    if auto_sync_enabled(app):
        return AUTO_SYNC_REFUSAL
    return None


def rollback_patch(
    resource_version: str,
    app: Mapping[str, Any],
    deployment: Deployment,
    *,
    username: str,
    prune: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """The merge patch that starts the rollback: the operation the argocd server builds for
    `Rollback`, with resourceVersion as a precondition and the previous operationState cleared."""
    raw = deployment.raw
    sync: dict[str, Any] = {"prune": prune, "dryRun": False, "syncStrategy": {"apply": {}}}
    if raw.get("revision"):
        sync["revision"] = _s(raw.get("revision"))
    if raw.get("revisions"):
        sync["revisions"] = [_s(r) for r in raw["revisions"]]
    options = _get(app, "spec", "syncPolicy", "syncOptions")
    if isinstance(options, list) and options:
        sync["syncOptions"] = [_s(o) for o in options]
    if isinstance(raw.get("source"), Mapping) and raw["source"]:
        sync["source"] = dict(raw["source"])
    if raw.get("sources"):
        sync["sources"] = [dict(s) for s in raw["sources"] if isinstance(s, Mapping)]
    operation = {"initiatedBy": {"username": username, "automated": False}, "sync": sync}
    return operation_patch(operation, resource_version, reason)
