"""argocd.diff, argocd.status, preflight and the layer plan against kmock over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks.argocd import checks, layer, tasks
from blumeops_tasks.preflight import run_checks
from tests.argocd.conftest import GitRepo, make_context
from tests.argocd.fake_argo import FakeArgo, Script, application

DEPLOY = {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "caddy", "name": "caddy"}
OLD_CM = {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "caddy", "name": "caddy-old"}
REFRESH = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}


def test_diff_refreshes_waits_and_lists_changes(
    ctx: Context, fake: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put(application("caddy"))  # before the refresh ArgoCD believed everything was in sync
    fake.scripts["caddy"] = Script(
        on_refresh={
            "sync": {"status": "OutOfSync", "revision": "a" * 40},
            "resources": [
                {**DEPLOY, "status": "OutOfSync"},
                {**OLD_CM, "status": "OutOfSync", "requiresPruning": True},
            ],
        }
    )
    with pytest.raises(Exit) as caught:
        tasks.diff(ctx, app="caddy", json=True)
    assert caught.value.code == 2
    document = json.loads(capsys.readouterr().out)  # the shared plan model's document
    assert str(document["layers"][0].pop("digest")).startswith("sha256:")
    assert document == {
        "exit_code": 2,
        "error": None,
        "counts": {"create": 0, "update": 1, "delete": 1, "replace": 0, "run": 0},
        "layers": [
            {
                "layer": "argocd",
                "available": True,
                "error": None,
                "note": "caddy: OutOfSync, Healthy, compared at 2026-11-26T05:00:10Z",
                "counts": {"create": 0, "update": 1, "delete": 1, "replace": 0, "run": 0},
                "targets": [
                    {
                        "target": "caddy",
                        "counts": {"create": 0, "update": 1, "delete": 1, "replace": 0, "run": 0},
                        "changes": [
                            {
                                "action": "update",
                                "resource": "Deployment.apps/caddy/caddy",
                                "diff": "",
                                "detail": "out of sync",
                            },
                            {
                                "action": "delete",
                                "resource": "ConfigMap/caddy/caddy-old",
                                "diff": "",
                                "detail": "would be pruned (needs --prune)",
                            },
                        ],
                    }
                ],
            }
        ],
    }
    assert fake.patches("caddy") == [REFRESH]
    assert "argocd.argoproj.io/refresh" not in fake.get("caddy")["metadata"].get("annotations", {})  # type: ignore[index]


def test_diff_table_and_no_changes_exit_0(ctx: Context, fake: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    fake.put(application("caddy", resources=[{**DEPLOY, "status": "Synced"}]))
    tasks.diff(ctx, app="caddy")
    out = capsys.readouterr()
    assert "│ argocd │ caddy  │ 0      │ 0      │ 0      │ 0       │ 0   │ no changes │" in out.out
    assert "caddy: Synced, Healthy, compared at 2026-11-26T05:00:10Z" in out.err


def test_diff_refresh_never_completes(ctx: Context, fake: FakeArgo) -> None:
    fake.put(application("caddy"))
    fake.scripts["caddy"] = Script(answer_refresh=False)
    slow = make_context(
        Path(ctx.config.blumeops.root),
        Path(ctx.config.blumeops.state_dir),
        kubeconfig=ctx.config.blumeops.argocd.kubeconfig,
        refresh_timeout=1.0,
    )
    with pytest.raises(Exit) as caught:
        tasks.diff(slow, app="caddy")
    assert caught.value.code == 1
    assert caught.value.message == (
        "ArgoCD did not finish refreshing 'caddy' within 1s; check the application controller "
        "(kubectl -n argocd logs deploy/argocd-application-controller) and retry."
    )


def test_diff_comparison_error_is_an_error(ctx: Context, fake: FakeArgo) -> None:
    fake.put(application("caddy"))
    fake.scripts["caddy"] = Script(
        on_refresh={
            "sync": {"status": "Unknown"},
            "conditions": [{"type": "ComparisonError", "message": "Unable to resolve 'feature' to a commit SHA"}],
        }
    )
    with pytest.raises(Exit) as caught:
        tasks.diff(ctx, app="caddy")
    assert caught.value.code == 1
    assert caught.value.message == (
        "ArgoCD cannot compare 'caddy' with git: ComparisonError: Unable to resolve 'feature' to a commit SHA."
    )


def test_diff_unknown_app(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        tasks.diff(ctx, app="minflux")
    assert caught.value.message == (
        "No app named 'minflux' in argocd/ (closest: miniflux); known apps: blumeops, caddy, homepage, miniflux."
    )


def test_diff_app_missing_in_cluster(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        tasks.diff(ctx, app="blumeops")
    assert caught.value.message == (
        "Application 'blumeops' does not exist in namespace 'argocd'; bootstrap it with kubectl apply -f "
        "argocd/root.yaml."
    )


def _row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["app"] == name)


def test_status_json_rows(ctx: Context, fake: FakeArgo, gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    head = gitrepo.head()
    fake.put(application("caddy", sync={"status": "Synced", "revision": head}))
    fake.put(
        application(
            "miniflux",
            sync={"status": "OutOfSync", "revision": "b" * 40},
            health={"status": "Degraded"},
            operationState={"phase": "Failed", "message": "one or more objects failed to apply"},
            conditions=[{"type": "SyncError", "message": "Failed sync attempt"}],
        )
    )
    fake.put(application("grafana"))
    tasks.status(ctx, json=True)
    document = json.loads(capsys.readouterr().out)
    assert document["head"] == head
    rows = document["apps"]
    assert [r["app"] for r in rows] == ["blumeops", "caddy", "homepage", "miniflux", "grafana"]
    assert _row(rows, "caddy") | {} == {
        "app": "caddy",
        "sync": "Synced",
        "health": "Healthy",
        "revision": head,
        "head": head,
        "at_head": True,
        "operation": "",
        "auto_sync": False,
        "conditions": [],
        "diverged": [],
    }
    assert _row(rows, "miniflux")["operation"] == "Failed"
    assert _row(rows, "miniflux")["conditions"] == [{"type": "SyncError", "message": "Failed sync attempt"}]
    assert _row(rows, "blumeops")["sync"] == "Missing"
    assert _row(rows, "grafana")["conditions"] == [{"type": "NotInGit", "message": "no argocd/apps/grafana.yaml"}]


def test_status_table(ctx: Context, fake: FakeArgo, gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    fake.put(application("caddy", sync={"status": "Synced", "revision": gitrepo.head()}))
    tasks.status(ctx)
    out = capsys.readouterr().out
    assert f"{gitrepo.head()[:8]} (= HEAD)" in out
    assert "NotInCluster: not in the cluster" in out


def test_status_unauthorized(ctx: Context, fake: FakeArgo) -> None:
    fake.respond("GET", 403, 'applications.argoproj.io is forbidden: User "tester" cannot list resource')
    with pytest.raises(Exit) as caught:
        tasks.status(ctx)
    assert caught.value.message == (
        "The credentials of context 'minikube-indri' are not allowed to list Applications in namespace 'argocd' "
        '(403 Forbidden) (applications.argoproj.io is forbidden: User "tester" cannot list resource); use an '
        "identity with access to Applications in namespace 'argocd'."
    )


# --- preflight and plan ---------------------------------------------------------------------------


def _preflight(c: Context) -> dict[str, tuple[str, str]]:
    return {r.name: (r.status, r.detail) for r in run_checks(layer.preflight_checks(c), default_timeout=20)}


def test_preflight_all_ok(ctx: Context, fake: FakeArgo) -> None:
    results = _preflight(ctx)
    assert {name: status for name, (status, _) in results.items()} == dict.fromkeys(checks.PREFLIGHT_NAMES, "ok")


def test_preflight_missing_kubeconfig(gitrepo: GitRepo, tmp_path: Path) -> None:
    c = make_context(gitrepo.root, tmp_path / "state", kubeconfig=str(tmp_path / "nope"))
    results = _preflight(c)
    assert results["kubeconfig"] == ("fail", f"no kubeconfig at {tmp_path / 'nope'}")
    assert results["context"][0] == "fail"


def test_preflight_wrong_context(gitrepo: GitRepo, fake: FakeArgo, tmp_path: Path) -> None:
    config = fake.kubeconfig(tmp_path / "other", context="kind-test")
    results = _preflight(make_context(gitrepo.root, tmp_path / "state", kubeconfig=str(config)))
    assert results["context"] == ("fail", "context 'minikube-indri' not in the kubeconfig (has: kind-test)")


def test_preflight_expired_credentials(ctx: Context, fake: FakeArgo) -> None:
    fake.respond("GET", 401, "Unauthorized", everything=True)
    results = _preflight(ctx)
    assert results["api reachable"] == ("ok", "answered HTTP 401")
    assert results["credentials"][0] == "fail"
    assert "(401 Unauthorized): they are missing or expired" in results["credentials"][1]


def test_preflight_unreachable(gitrepo: GitRepo, fake: FakeArgo, tmp_path: Path) -> None:
    config = fake.kubeconfig(tmp_path / "dead", server="http://127.0.0.1:9")
    results = _preflight(make_context(gitrepo.root, tmp_path / "state", kubeconfig=str(config), request_timeout=2.0))
    status, detail = results["api reachable"]
    assert status == "fail"
    assert detail.startswith("The API server of context 'minikube-indri' is unreachable while trying to discover")


def test_preflight_crd_not_served(ctx: Context, fake: FakeArgo) -> None:
    fake.respond("GET", 404, "the server could not find the requested resource", everything=True)
    results = _preflight(ctx)
    assert results["credentials"] == ("ok", "accepted")
    assert results["application CRD"] == ("fail", "argoproj.io/v1alpha1 is not served")


def test_layer_plan_reads_last_comparison(ctx: Context, fake: FakeArgo) -> None:
    fake.put(application("caddy", resources=[{**DEPLOY, "status": "OutOfSync"}]))
    fake.put(application("homepage"))
    fake.put(application("miniflux"))
    plan = layer.plan(ctx)
    assert plan.error is None
    by_target = {t.target: [(c.action, c.resource) for c in t.changes] for t in plan.targets}
    assert by_target == {
        "blumeops": [("create", "Application/argocd/blumeops")],
        "caddy": [("update", "Deployment.apps/caddy/caddy")],
        "homepage": [],
        "miniflux": [],
    }
    assert fake.patches("caddy") == []  # the plan is read-only: no refresh


def test_layer_plan_error_is_one_sentence(gitrepo: GitRepo, tmp_path: Path) -> None:
    plan = layer.plan(make_context(gitrepo.root, tmp_path / "state", kubeconfig=str(tmp_path / "none")))
    assert plan.error == f"No kubeconfig at {tmp_path / 'none'}; set KUBECONFIG or blumeops.argocd.kubeconfig."


def test_watch_reopens_quiet_streams_until_the_deadline(ctx: Context, fake: FakeArgo) -> None:
    import threading
    import time

    from blumeops_tasks.argocd import flows
    from blumeops_tasks.argocd.client import ArgoApi

    fake.put(application("caddy"))
    fake.put(application("miniflux"))
    # A change arrives after several quiet read timeouts; the other app's events are filtered out.
    timer = threading.Timer(1.0, lambda: fake.put(application("caddy", health={"status": "Degraded"})))
    timer.start()
    seen: list[str] = []
    with ArgoApi(flows.target(ctx)) as api:
        for obj in api.watch("caddy", deadline=time.monotonic() + 10, chunk=0.3):
            assert obj["metadata"]["name"] == "caddy"
            seen.append(obj["status"]["health"]["status"])
            if seen[-1] == "Degraded":
                break
    timer.join()
    assert seen[0] == "Healthy"
    assert seen[-1] == "Degraded"
    watches = [r for r in fake.client_requests() if r[2].get("watch") == "true"]
    assert len(watches) >= 3  # re-opened after each quiet 0.3 s read timeout


# --- issue 11: refresh completion, the live spec against git ---------------------------------------


def test_refresh_finished_within_the_same_second_is_seen(ctx: Context, fake: FakeArgo) -> None:
    import time

    fake.put(application("caddy"))
    fake.scripts["caddy"] = Script(move_reconciled=False)  # reconciledAt keeps its whole second
    started = time.monotonic()
    tasks.diff(ctx, app="caddy")  # refresh_timeout is 3 s: the old rule waited it out and failed
    assert time.monotonic() - started < 2.5
    assert fake.patches("caddy") == [REFRESH]


def test_diff_and_status_name_a_live_app_that_differs_from_git(
    ctx: Context, fake: FakeArgo, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"repoURL": "https://github.com/x/fork.git", "path": "argocd/manifests/caddy", "targetRevision": "main"}
    fake.put(application("caddy", source=source))
    with pytest.raises(Exit) as caught:
        tasks.diff(ctx, app="caddy", json=True)
    assert caught.value.code == 2
    changes = json.loads(capsys.readouterr().out)["layers"][0]["targets"][0]["changes"]
    assert [(c["action"], c["resource"]) for c in changes] == [("update", "Application/argocd/caddy")]
    assert "live repoURL 'https://github.com/x/fork.git'" in changes[0]["detail"]
    tasks.status(ctx, json=True)
    row = _row(json.loads(capsys.readouterr().out)["apps"], "caddy")
    assert row["diverged"] == [
        "live repoURL 'https://github.com/x/fork.git', git says 'https://forge.ops.eblu.me/eblume/blumeops.git'"
    ]
    assert row["conditions"][-1]["type"] == "Diverged"


def test_diff_json_error_is_one_document(ctx: Context, fake: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    fake.respond("GET", 403, "forbidden")
    with pytest.raises(Exit):
        tasks.diff(ctx, app="caddy", json=True)
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == 1
    assert "403 Forbidden" in document["error"]


def test_layer_plan_shows_a_diverged_application(ctx: Context, fake: FakeArgo) -> None:
    source = {
        "repoURL": "https://forge.ops.eblu.me/eblume/blumeops.git",
        "path": "argocd/manifests/caddy",
        "targetRevision": "feature-x",
    }
    fake.put(application("caddy", source=source))
    caddy = next(t for t in layer.plan(ctx).targets if t.target == "caddy")
    assert [(c.action, c.resource, c.detail) for c in caddy.changes] == [
        ("update", "Application/argocd/caddy", "live targetRevision 'feature-x', git says 'main'")
    ]
