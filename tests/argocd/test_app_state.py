"""Pure decisions over Application objects."""

from __future__ import annotations

from typing import Any

import pytest

from blumeops_tasks.argocd import app_state
from tests.argocd.fake_argo import application

SHA = "c" * 40


def done(
    phase: str,
    *,
    health: str = "Healthy",
    sync: str = "Synced",
    reconciled: str = "2026-11-26T05:00:30Z",
    results: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return application(
        "caddy",
        sync={"status": sync, "revision": SHA},
        health={"status": health},
        reconciledAt=reconciled,
        operationState={
            "phase": phase,
            "message": f"{phase.lower()} message",
            "finishedAt": "2026-11-26T05:00:20Z",
            "syncResult": {"revision": SHA, "resources": results or []},
        },
        **extra,
    )


def test_sync_patch_is_exact() -> None:
    assert app_state.sync_patch("42", username="op", revision=SHA, prune=True, dry_run=True, reason="why") == {
        "metadata": {"resourceVersion": "42"},
        "operation": {
            "initiatedBy": {"username": "op", "automated": False},
            "sync": {"revision": SHA, "prune": True, "dryRun": True, "syncStrategy": {"hook": {"force": False}}},
            "retry": {"limit": 0},
            "info": [{"name": "reason", "value": "why"}],
        },
        "status": {"operationState": None},
    }


def test_sync_patch_refuses_short_sha() -> None:
    with pytest.raises(ValueError, match="full 40-character SHA"):
        app_state.sync_patch("1", username="op", revision="abc1234")


@pytest.mark.parametrize(
    ("app", "verdict", "summary"),
    [
        (done("Succeeded"), "succeeded", f"Synced and Healthy at {SHA[:8]}"),
        (done("Succeeded", health="Progressing"), "waiting", "Synced, health Progressing"),
        (done("Succeeded", sync="OutOfSync"), "waiting", "operation Succeeded, app OutOfSync"),
        (
            done("Succeeded", reconciled="2026-11-26T05:00:10Z"),
            "waiting",
            "operation Succeeded, waiting for the app to be re-compared",
        ),
        (done("Succeeded", health="Degraded"), "failed", "sync Succeeded but the app is Degraded"),
        (done("Failed"), "failed", "sync Failed: failed message"),
        (done("Error"), "failed", "sync Error: error message"),
        (application("caddy", operationState={"phase": "Running"}), "waiting", "operation Running"),
        ({**done("Succeeded"), "operation": {"sync": {}}}, "waiting", "operation Succeeded"),
        (application("caddy"), "waiting", "operation Pending"),
    ],
)
def test_sync_verdict(app: dict[str, Any], verdict: str, summary: str) -> None:
    outcome = app_state.sync_verdict(app)
    assert (outcome.verdict, outcome.summary) == (verdict, summary)


def test_dry_run_succeeds_on_phase_alone() -> None:
    outcome = app_state.sync_verdict(done("Succeeded", health="Degraded", sync="OutOfSync"), dry_run=True)
    assert (outcome.verdict, outcome.summary) == ("succeeded", "dry run Succeeded: nothing was changed")


def test_failing_resources_from_sync_result_and_health() -> None:
    app = done(
        "Failed",
        results=[
            {
                "group": "apps",
                "kind": "Deployment",
                "namespace": "caddy",
                "name": "caddy",
                "status": "SyncFailed",
                "message": "invalid image",
            },
            {"group": "", "kind": "Service", "namespace": "caddy", "name": "caddy", "status": "Synced"},
        ],
        resources=[
            {
                "group": "",
                "kind": "Pod",
                "namespace": "caddy",
                "name": "p",
                "health": {"status": "Degraded", "message": "CrashLoopBackOff"},
            }
        ],
    )
    assert app_state.failing_resources(app) == [
        "Deployment.apps/caddy/caddy: invalid image",
        "Pod/caddy/p: Degraded: CrashLoopBackOff",
    ]
    assert app_state.sync_verdict(app).failures == tuple(app_state.failing_resources(app))


def test_changes_classify_update_create_delete() -> None:
    app = application(
        "caddy",
        resources=[
            {"group": "apps", "kind": "Deployment", "namespace": "caddy", "name": "a", "status": "OutOfSync"},
            {
                "group": "",
                "kind": "Service",
                "namespace": "caddy",
                "name": "b",
                "status": "OutOfSync",
                "health": {"status": "Missing"},
            },
            {
                "group": "",
                "kind": "ConfigMap",
                "namespace": "caddy",
                "name": "c",
                "status": "OutOfSync",
                "requiresPruning": True,
            },
            {"group": "", "kind": "ConfigMap", "namespace": "caddy", "name": "d", "status": "Synced"},
            {"group": "", "kind": "Namespace", "name": "caddy", "status": "OutOfSync"},
        ],
    )
    plan = app_state.changes(app)
    assert plan.target == "caddy"
    assert [(c.action, c.resource) for c in plan.changes] == [
        ("update", "Deployment.apps/caddy/a"),
        ("create", "Service/caddy/b"),
        ("delete", "ConfigMap/caddy/c"),
        ("update", "Namespace/caddy"),
    ]


def test_refresh_done_is_the_annotation_gone_in_a_newer_resource_version() -> None:
    app = application("caddy", reconciledAt="2026-11-26T05:00:00Z")
    app["metadata"]["resourceVersion"] = "7"
    app["metadata"]["annotations"] = {app_state.REFRESH_ANNOTATION: "normal"}
    assert not app_state.refresh_done(app, {"6", "5"})  # still annotated
    del app["metadata"]["annotations"][app_state.REFRESH_ANNOTATION]
    assert not app_state.refresh_done(app, {"7", "6"})  # the version read before the request: stale
    # Same reconciledAt (whole seconds), but the annotation is gone in a newer version: done.
    assert app_state.refresh_done(app, {"6", "5"})
    assert app_state.refresh_patch() == {"metadata": {"annotations": {app_state.REFRESH_ANNOTATION: "normal"}}}


URL = "https://forge.ops.eblu.me/eblume/blumeops.git"


def test_divergence_names_each_field_against_git() -> None:
    git = [{"repoURL": URL, "path": "argocd/manifests/caddy", "targetRevision": "main"}]
    same = application(
        "caddy",
        source={"repoURL": URL.removesuffix(".git"), "path": "argocd/manifests/caddy/", "targetRevision": "main"},
    )
    assert app_state.divergence(same, git, URL) == []
    moved = application(
        "caddy",
        source={
            "repoURL": "https://github.com/x/fork.git",
            "path": "argocd/manifests/other",
            "targetRevision": "feature-x",
        },
    )
    assert app_state.divergence(moved, git, URL) == [
        f"live repoURL 'https://github.com/x/fork.git', git says '{URL}'",
        "live targetRevision 'feature-x', git says 'main'",
        "live path 'argocd/manifests/other', git says 'argocd/manifests/caddy'",
    ]
    # A manifest on another repo than the configured one: the live app is held to the configured repo.
    assert app_state.divergence(same, [{**git[0], "repoURL": "https://elsewhere/r.git"}], URL) == []
    multi = [
        {"repoURL": "https://charts.example", "chart": "x", "targetRevision": "1.2.3"},
        {"repoURL": URL, "targetRevision": "main", "ref": "values"},
    ]
    live_multi = application("caddy")
    live_multi["spec"].pop("source")
    live_multi["spec"]["sources"] = [{**multi[0], "targetRevision": "1.3.0"}, multi[1]]
    assert app_state.divergence(live_multi, multi, URL) == ["live source 1 targetRevision '1.3.0', git says '1.2.3'"]
    assert app_state.divergence(live_multi, git, URL) == ["live has 2 source(s), git has 1"]


def test_deployed_revisions_prefer_the_sync_result() -> None:
    assert app_state.deployed_revisions(done("Succeeded")) == [SHA]
    multi = application("caddy", operationState={"syncResult": {"revisions": ["a" * 40, "b" * 40]}})
    assert app_state.deployed_revisions(multi) == ["a" * 40, "b" * 40]
    assert app_state.deployed_revisions(application("caddy")) == ["0" * 40]


def test_busy_and_status_row() -> None:
    assert app_state.view({**application("a"), "operation": {"sync": {}}}).busy
    assert app_state.view(application("a", operationState={"phase": "Terminating"})).busy
    assert not app_state.view(done("Succeeded")).busy
    row = app_state.status_row(app_state.view(done("Succeeded")), SHA)
    assert (row["revision"], row["at_head"], row["operation"]) == (SHA, True, "Succeeded")
    assert app_state.revision_vs_head(SHA, "d" * 40) == "cccccccc (HEAD dddddddd)"
    assert app_state.revision_vs_head("", SHA) == "-"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://forge.ops.eblu.me/eblume/blumeops.git", "https://forge.ops.eblu.me/eblume/blumeops", True),
        ("git@forge.ops.eblu.me:eblume/blumeops.git", "https://forge.ops.eblu.me/eblume/blumeops.git", True),
        ("ssh://git@forge.ops.eblu.me:2222/eblume/blumeops.git", "https://Forge.ops.eblu.me/eblume/blumeops/", True),
        ("https://github.com/eblume/blumeops.git", "https://forge.ops.eblu.me/eblume/blumeops.git", False),
        ("", "https://forge.ops.eblu.me/eblume/blumeops.git", False),
    ],
)
def test_same_repo(a: str, b: str, same: bool) -> None:
    from blumeops_tasks.argocd.revisions import same_repo

    assert same_repo(a, b) is same
