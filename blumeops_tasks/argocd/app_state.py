"""Pure decisions over Application objects (plain dicts as the Kubernetes API returns them).

Phases, health, the out-of-sync resource list, refresh completion, the sync operation patch,
and the verdict on a running sync. No I/O here: the tasks gather objects and call these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from blumeops_tasks.plan import Change, TargetPlan

FINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
FULL_SHA_LENGTH = 40


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _s(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Resource:
    group: str
    kind: str
    namespace: str
    name: str
    status: str = ""
    health: str = ""
    message: str = ""
    requires_pruning: bool = False

    @property
    def ref(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind}/{self.namespace}/{self.name}" if self.namespace else f"{kind}/{self.name}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resource:
        health = data.get("health")
        return cls(
            group=_s(data.get("group")),
            kind=_s(data.get("kind")),
            namespace=_s(data.get("namespace")),
            name=_s(data.get("name")),
            status=_s(data.get("status")),
            health=_s(_get(health, "status")) if isinstance(health, Mapping) else "",
            message=_s(data.get("message") or _get(health, "message")),
            requires_pruning=bool(data.get("requiresPruning")),
        )


@dataclass(frozen=True)
class AppView:
    """What the tasks show about one live Application."""

    name: str
    sync_status: str
    sync_revision: str
    health: str
    health_message: str
    phase: str
    phase_message: str
    operation_pending: bool
    started_at: str
    finished_at: str
    reconciled_at: str
    target_revision: str
    automated: bool
    conditions: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def busy(self) -> bool:
        """An operation is requested or running: a new sync must not be started."""
        return self.operation_pending or self.phase in ("Running", "Terminating")


def view(app: Mapping[str, Any]) -> AppView:
    status = app.get("status") or {}
    op = status.get("operationState") or {}
    conditions = tuple(
        (_s(c.get("type")), _s(c.get("message"))) for c in status.get("conditions") or [] if isinstance(c, Mapping)
    )
    return AppView(
        name=_s(_get(app, "metadata", "name")),
        sync_status=_s(_get(status, "sync", "status")) or "Unknown",
        sync_revision=_s(_get(status, "sync", "revision")),
        health=_s(_get(status, "health", "status")) or "Unknown",
        health_message=_s(_get(status, "health", "message")),
        phase=_s(op.get("phase")),
        phase_message=_s(op.get("message")),
        operation_pending=bool(app.get("operation")),
        started_at=_s(op.get("startedAt")),
        finished_at=_s(op.get("finishedAt")),
        reconciled_at=_s(status.get("reconciledAt")),
        target_revision=_s(_get(app, "spec", "source", "targetRevision")),
        automated=auto_sync_enabled(app),
        conditions=conditions,
    )


def auto_sync_enabled(app: Mapping[str, Any]) -> bool:
    """As ArgoCD's SyncPolicy.IsAutomatedSyncEnabled: `spec.syncPolicy.automated` is set (even
    empty, `automated: {}`) and its `enabled` (ArgoCD 3.1+) is not false."""
    automated = _get(app, "spec", "syncPolicy", "automated")
    return isinstance(automated, Mapping) and automated.get("enabled") is not False


def revision_vs_head(deployed: str, head: str) -> str:
    """Deployed revision against local HEAD, for the status table."""
    if not deployed:
        return "-"
    short = deployed[:8]
    if not head:
        return short
    return f"{short} (= HEAD)" if deployed == head else f"{short} (HEAD {head[:8]})"


def status_row(app: AppView, head: str) -> dict[str, Any]:
    return {
        "app": app.name,
        "sync": app.sync_status,
        "health": app.health,
        "revision": app.sync_revision,
        "head": head,
        "at_head": bool(head) and app.sync_revision == head,
        "operation": ("Requested" if app.operation_pending and not app.phase else app.phase) or "",
        "auto_sync": app.automated,
        "conditions": [{"type": t, "message": m} for t, m in app.conditions],
    }


# --- diff -----------------------------------------------------------------------------------


def resources(app: Mapping[str, Any]) -> list[Resource]:
    return [Resource.from_dict(r) for r in _get(app, "status", "resources") or [] if isinstance(r, Mapping)]


def out_of_sync(app: Mapping[str, Any]) -> list[Resource]:
    """Resources ArgoCD would touch: OutOfSync ones and those that would be pruned."""
    return [r for r in resources(app) if r.status == "OutOfSync" or r.requires_pruning]


def changes(app: Mapping[str, Any], diverged: Sequence[str] = (), namespace: str = "argocd") -> TargetPlan:
    """The app's pending changes in the shared plan model; a live spec that differs from git is
    itself a change (the Application is updated when its parent app syncs)."""
    name = _s(_get(app, "metadata", "name"))
    found: list[Change] = []
    if diverged:
        found.append(Change("update", f"Application/{namespace}/{name}", detail="; ".join(diverged)))
    for res in out_of_sync(app):
        if res.requires_pruning:
            found.append(Change("delete", res.ref, detail="would be pruned (needs --prune)"))
        elif res.health == "Missing":
            found.append(Change("create", res.ref, detail="missing in the cluster"))
        else:
            found.append(Change("update", res.ref, detail="out of sync"))
    return TargetPlan(name, tuple(found))


def blocking_conditions(app: Mapping[str, Any]) -> list[str]:
    """Conditions that make a diff meaningless (the comparison itself failed)."""
    bad = ("ComparisonError", "InvalidSpecError", "UnknownError")
    return [f"{t}: {m}" for t, m in view(app).conditions if t in bad]


# --- refresh --------------------------------------------------------------------------------


def refresh_patch(hard: bool = False) -> dict[str, Any]:
    return {"metadata": {"annotations": {REFRESH_ANNOTATION: "hard" if hard else "normal"}}}


def refresh_done(app: Mapping[str, Any], stale_versions: Iterable[str]) -> bool:
    """The controller has answered the refresh: the annotation is gone in a resourceVersion newer
    than the ones seen before and at the request (reconciledAt has whole-second precision, so a
    refresh finished within the same second does not move it)."""
    annotations = _get(app, "metadata", "annotations") or {}
    if REFRESH_ANNOTATION in annotations:
        return False
    version = _s(_get(app, "metadata", "resourceVersion"))
    return bool(version) and version not in set(stale_versions)


# --- the live spec against git ----------------------------------------------------------------

SOURCE_FIELDS = ("repoURL", "targetRevision", "path", "chart")


def live_sources(app: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = app.get("spec") or {}
    many = spec.get("sources") if isinstance(spec, Mapping) else None
    if isinstance(many, list) and many:
        return [s for s in many if isinstance(s, Mapping)]
    one = _get(spec, "source")
    return [one] if isinstance(one, Mapping) else []


def _field(source: Mapping[str, Any], key: str) -> str:
    from blumeops_tasks.argocd.revisions import repo_key

    value = _s(source.get(key)).strip()
    if key == "repoURL":
        return repo_key(value)
    if key == "targetRevision":
        return value or "HEAD"  # ArgoCD's default
    return value.rstrip("/")


def divergence(app: Mapping[str, Any], git_sources: Sequence[Mapping[str, Any]], repo_url: str) -> list[str]:
    """How the live Application's sources differ from the committed manifest (empty: they agree).

    repoURL (the configured repo_url for a git source), targetRevision, path and chart are compared
    source by source."""
    live = live_sources(app)
    if len(live) != len(git_sources):
        return [f"live has {len(live)} source(s), git has {len(git_sources)}"]
    found: list[str] = []
    for index, (have, want) in enumerate(zip(live, git_sources, strict=True)):
        label = f"source {index + 1} " if len(live) > 1 else ""
        # A git source must be the configured repo (what inv check holds the manifests to).
        expected = want if want.get("chart") else {**want, "repoURL": repo_url}
        for key in SOURCE_FIELDS:
            if _field(have, key) != _field(expected, key):
                found.append(f"live {label}{key} {_s(have.get(key))!r}, git says {_s(expected.get(key))!r}")
    return found


def deployed_revisions(app: Mapping[str, Any]) -> list[str]:
    """The revision(s) the last operation deployed (syncResult), else the compared one (sync)."""
    result = _get(app, "status", "operationState", "syncResult") or {}
    found = [_s(result.get("revision"))] if result.get("revision") else []
    found += [_s(r) for r in result.get("revisions") or [] if r]
    if not found:
        found = [_s(_get(app, "status", "sync", "revision"))] if _get(app, "status", "sync", "revision") else []
    return found


# --- sync -----------------------------------------------------------------------------------


def sync_patch(
    resource_version: str,
    *,
    username: str,
    revision: str = "",
    prune: bool = False,
    dry_run: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """The merge patch that requests a sync, with resourceVersion as a precondition.

    Mirrors what the argocd server does: `.operation` set, the previous operationState cleared.
    """
    if revision and len(revision) != FULL_SHA_LENGTH:
        raise ValueError(f"revision must be a full {FULL_SHA_LENGTH}-character SHA, got {revision!r}")
    operation: dict[str, Any] = {
        "initiatedBy": {"username": username, "automated": False},
        "sync": {
            "revision": revision,
            "prune": prune,
            "dryRun": dry_run,
            "syncStrategy": {"hook": {"force": False}},
        },
        "retry": {"limit": 0},
    }
    return operation_patch(operation, resource_version, reason)


def operation_patch(operation: dict[str, Any], resource_version: str, reason: str = "") -> dict[str, Any]:
    """The merge patch that starts `operation` (sync or rollback) as the argocd server does: the reason
    as info, resourceVersion as a precondition, the previous operationState cleared."""
    if reason:
        operation = {**operation, "info": [{"name": "reason", "value": reason}]}
    return {
        "metadata": {"resourceVersion": resource_version},
        "operation": operation,
        "status": {"operationState": None},
    }


Verdict = Literal["waiting", "succeeded", "failed"]


@dataclass(frozen=True)
class SyncOutcome:
    verdict: Verdict
    summary: str
    failures: tuple[str, ...] = ()


def failing_resources(app: Mapping[str, Any]) -> list[str]:
    """`ref: message` for every resource whose sync failed or whose health is Degraded."""
    lines: list[str] = []
    for raw in _get(app, "status", "operationState", "syncResult", "resources") or []:
        if isinstance(raw, Mapping) and raw.get("status") == "SyncFailed":
            res = Resource.from_dict(raw)
            lines.append(f"{res.ref}: {res.message or 'sync failed'}")
    for res in resources(app):
        if res.health == "Degraded":
            lines.append(f"{res.ref}: Degraded{': ' + res.message if res.message else ''}")
    return lines


def synced_resources(app: Mapping[str, Any]) -> list[dict[str, str]]:
    """Per-resource results of the last operation, for the final table."""
    rows: list[dict[str, str]] = []
    for raw in _get(app, "status", "operationState", "syncResult", "resources") or []:
        if isinstance(raw, Mapping):
            res = Resource.from_dict(raw)
            rows.append({"resource": res.ref, "status": res.status, "message": res.message})
    return rows


def sync_verdict(  # noqa: PLR0911
    app: Mapping[str, Any], *, dry_run: bool = False, expect_synced: bool = True
) -> SyncOutcome:
    """Where a requested sync stands, like `argocd app wait --sync --health`.

    Finished = `.operation` gone, a final phase with finishedAt, and (for a real sync) the
    app re-compared after it finished. Failed/Error or a Degraded app fail; Progressing waits.
    `expect_synced=False` (a rollback: an older commit than the target revision on purpose)
    does not wait for Synced: the app stays OutOfSync with git until the next sync.
    """
    v = view(app)
    if v.operation_pending or v.phase not in FINAL_PHASES or not v.finished_at:
        state = v.phase or ("Requested" if v.operation_pending else "Pending")
        return SyncOutcome("waiting", f"operation {state}")
    if v.phase in ("Failed", "Error"):
        failures = failing_resources(app)
        message = v.phase_message or "no message"
        return SyncOutcome("failed", f"sync {v.phase}: {message}", tuple(failures))
    if dry_run:
        return SyncOutcome("succeeded", "dry run Succeeded: nothing was changed")
    if not v.reconciled_at or v.reconciled_at < v.finished_at:
        return SyncOutcome("waiting", "operation Succeeded, waiting for the app to be re-compared")
    if v.health == "Degraded":
        failures = failing_resources(app) or [f"{v.name}: {v.health_message or 'Degraded'}"]
        return SyncOutcome("failed", "sync Succeeded but the app is Degraded", tuple(failures))
    if v.sync_status != "Synced" and expect_synced:
        return SyncOutcome("waiting", f"operation Succeeded, app {v.sync_status}")
    if v.health != "Healthy":
        return SyncOutcome("waiting", f"{v.sync_status}, health {v.health}")
    if not expect_synced:
        deployed = deployed_revisions(app)
        at = deployed[0][:8] if deployed else "unknown revision"
        return SyncOutcome("succeeded", f"Healthy at {at}, {v.sync_status} with git")
    return SyncOutcome("succeeded", f"Synced and Healthy at {v.sync_revision[:8] or 'unknown revision'}")


def progress_line(app: Mapping[str, Any]) -> str:
    """One line per watch event: phase, sync, health, operation message."""
    v = view(app)
    phase = v.phase or ("Requested" if v.operation_pending else "-")
    line = f"{v.name}: phase {phase}, sync {v.sync_status}, health {v.health}"
    return f"{line} - {v.phase_message}" if v.phase_message else line
