"""argocd.sync against kmock over real HTTP, with the scripted controller playing ArgoCD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks.argocd import tasks
from tests.argocd.conftest import GitRepo
from tests.argocd.fake_argo import FakeArgo, Script, application

DEPLOY = {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "caddy", "name": "caddy"}
CONFIGMAP = {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "caddy", "name": "caddy-config"}
USER = "tester@blumeops"


def out_of_sync_caddy() -> dict[str, Any]:
    return application(
        "caddy",
        sync={"status": "OutOfSync", "revision": "0" * 40},
        resources=[{**DEPLOY, "status": "OutOfSync"}, {**CONFIGMAP, "status": "Synced"}],
    )


def expected_sync_patch(rv: str, *, revision: str = "", prune: bool = False, dry_run: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": rv},
        "operation": {
            "initiatedBy": {"username": USER, "automated": False},
            "sync": {
                "revision": revision,
                "prune": prune,
                "dryRun": dry_run,
                "syncStrategy": {"hook": {"force": False}},
            },
            "retry": {"limit": 0},
            "info": [{"name": "reason", "value": f"inv argocd.sync by {USER}"}],
        },
        "status": {"operationState": None},
    }


REFRESH = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
RUNNING = {
    "status": {"operationState": {"phase": "Running", "message": "one or more tasks are running", "startedAt": "NOW"}}
}


def finished(
    phase: str, message: str, results: list[dict[str, Any]], revision: str = "f" * 40, **status: Any
) -> dict[str, Any]:
    return {
        "operation": None,
        "status": {
            "operationState": {
                "phase": phase,
                "message": message,
                "startedAt": "2026-11-26T05:00:01Z",
                "finishedAt": "NOW",
                "syncResult": {"revision": revision, "resources": results},
            },
            **status,
        },
    }


def succeeded(revision: str, health: str = "Progressing") -> dict[str, Any]:
    """The operation finished at `revision` (what ArgoCD resolved the branch to)."""
    return finished(
        "Succeeded",
        "successfully synced (all tasks run)",
        [{**DEPLOY, "status": "Synced", "message": "deployment.apps/caddy configured"}],
        revision,
        sync={"status": "Synced", "revision": revision},
        health={"status": health},
        resources=[{**DEPLOY, "status": "Synced"}, {**CONFIGMAP, "status": "Synced"}],
        reconciledAt="NOW",
    )


HEALTHY = {"status": {"health": {"status": "Healthy"}, "reconciledAt": "NOW"}}


def run_sync(ctx: Context, **kwargs: Any) -> None:
    kwargs.setdefault("app", "caddy")
    kwargs.setdefault("yes", True)
    tasks.sync(ctx, **kwargs)


def journal(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_running_then_succeeded_and_healthy(
    ctx: Context, fake: FakeArgo, gitrepo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}, {**CONFIGMAP, "status": "Synced"}]},
        on_operation=[RUNNING, succeeded(gitrepo.head()), HEALTHY],
    )
    run_sync(ctx)
    # The refresh, then the operation with the resourceVersion read right before it.
    assert fake.patches("caddy") == [REFRESH, expected_sync_patch("1001")]
    # Discovery, read, refresh, a watch until refreshed, read, patch, one watch until done: no polling.
    app_path = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
    watch = ("GET", app_path, {"fieldSelector": "metadata.name=caddy", "watch": "true"})
    assert fake.client_requests() == [
        ("GET", "/apis/argoproj.io/v1alpha1", {}),
        ("GET", f"{app_path}/caddy", {}),
        ("PATCH", f"{app_path}/caddy", {}),
        watch,
        ("GET", f"{app_path}/caddy", {}),
        ("PATCH", f"{app_path}/caddy", {}),
        watch,
    ]
    out = capsys.readouterr().out
    assert "~ [argocd/caddy] update Deployment.apps/caddy/caddy (out of sync)" in out
    assert "caddy: phase Running, sync OutOfSync, health Healthy - one or more tasks are running" in out
    assert "deployment.apps/caddy configured" in out
    assert out.rstrip().endswith(f"caddy: Synced and Healthy at {gitrepo.head()[:8]}")
    entry = journal(tmp_path)[-1]
    assert (entry["task"], entry["targets"], entry["result"], entry["exit_code"]) == (
        "argocd.sync",
        ["caddy"],
        "succeeded",
        0,
    )
    assert entry["plan_counts"]["update"] == 1
    assert fake.get("caddy") is not None
    assert "operation" not in fake.get("caddy")  # type: ignore[operator]


def test_failed_names_resources_and_messages(ctx: Context, fake: FakeArgo, tmp_path: Path) -> None:
    fake.put(out_of_sync_caddy())
    invalid = 'Deployment.apps "caddy" is invalid: spec.template.spec.containers[0].image: Required value'
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[
            RUNNING,
            finished(
                "Failed",
                "one or more objects failed to apply, reason: " + invalid,
                [{**DEPLOY, "status": "SyncFailed", "message": invalid}],
                reconciledAt="NOW",
            ),
        ],
    )
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    message = str(caught.value.message)
    assert message.startswith("caddy: sync Failed: one or more objects failed to apply")
    assert f"failing resources: Deployment.apps/caddy/caddy: {invalid}." in message
    assert journal(tmp_path)[-1]["result"] == "failed"


def test_error_phase_exits_1(ctx: Context, fake: FakeArgo) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, finished("Error", "rpc error: Unable to resolve 'main' to a commit SHA", [])],
    )
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        "caddy: sync Error: rpc error: Unable to resolve 'main' to a commit SHA; "
        "failing resources: no resource reported a message."
    )


def test_degraded_after_success_fails(ctx: Context, fake: FakeArgo, gitrepo: GitRepo) -> None:
    fake.put(out_of_sync_caddy())
    degraded = {
        "status": {
            "health": {"status": "Degraded", "message": "Deployment exceeded its progress deadline"},
            "resources": [{**DEPLOY, "status": "Synced", "health": {"status": "Degraded", "message": "crashloop"}}],
            "reconciledAt": "NOW",
        }
    }
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, succeeded(gitrepo.head()), degraded],
    )
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        "caddy: sync Succeeded but the app is Degraded; "
        "failing resources: Deployment.apps/caddy/caddy: Degraded: crashloop."
    )


def test_stuck_in_running_times_out(ctx: Context, fake: FakeArgo, tmp_path: Path) -> None:
    fake.put(out_of_sync_caddy())
    hook = {
        "status": {
            "operationState": {"phase": "Running", "message": "waiting for completion of hook batch/Job/migrate"}
        }
    }
    fake.scripts["caddy"] = Script(on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]}, on_operation=[hook])
    with pytest.raises(Exit) as caught:
        run_sync(ctx, timeout="1")
    assert caught.value.code == 1
    assert caught.value.message == (
        "Timed out after 1s waiting for 'caddy', stuck at operation Running: waiting for completion of hook "
        "batch/Job/migrate; check it with inv argocd.status (the operation may still finish)."
    )
    assert journal(tmp_path)[-1]["result"] == "failed"


@pytest.mark.parametrize(
    ("live_extra", "phase"),
    [
        ({"operation": {"sync": {"revision": ""}}}, "Requested"),
        ({"status": {"operationState": {"phase": "Running", "message": "auto-sync"}}}, "Running"),
    ],
)
def test_operation_in_progress_is_refused_and_nothing_patched(
    ctx: Context, fake: FakeArgo, live_extra: dict[str, Any], phase: str
) -> None:
    app = out_of_sync_caddy()
    if "operation" in live_extra:
        app["operation"] = live_extra["operation"]
    else:
        app["status"].update(live_extra["status"])
    fake.put(app)
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        f"Another operation is already in progress on 'caddy' (phase {phase}); wait for it "
        f"(inv argocd.status) or terminate it in ArgoCD, then retry."
    )
    assert fake.patches("caddy") == []


def test_conflict_on_patch_rereads_and_retries(
    ctx: Context, fake: FakeArgo, gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, succeeded(gitrepo.head(), "Healthy")],
    )
    fake.set_interlopers(1)
    run_sync(ctx)
    # 1001 was stale (someone wrote 1002 first): 409, re-read, retried with 1002 (which then became 1003).
    assert fake.patches("caddy") == [REFRESH, expected_sync_patch("1001"), expected_sync_patch("1002")]
    assert "caddy: changed since it was read (409 Conflict); re-reading and retrying" in capsys.readouterr().err


def test_conflict_every_time_gives_up_without_operation(ctx: Context, fake: FakeArgo) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]})
    fake.set_interlopers(3)  # each attempt finds the object changed again: 1001->1002, 1002->1003, 1003->1004
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        "The sync of 'caddy' was not requested: the Application kept changing while it was being patched "
        "(409 Conflict 3 times); retry in a moment."
    )
    assert fake.patches("caddy") == [
        REFRESH,
        expected_sync_patch("1001"),
        expected_sync_patch("1002"),
        expected_sync_patch("1003"),
    ]
    assert "operation" not in (fake.get("caddy") or {})


def test_unauthorized_is_named(ctx: Context, fake: FakeArgo) -> None:
    fake.put(out_of_sync_caddy())
    fake.respond("GET", 401, "Unauthorized", everything=True)
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        "The API server rejected the credentials of context 'minikube-indri' while trying to discover "
        "argoproj.io/v1alpha1 (401 Unauthorized): they are missing or expired; log in again and refresh "
        "the kubeconfig."
    )
    assert fake.patches("caddy") == []


def test_server_error_on_patch(ctx: Context, fake: FakeArgo) -> None:
    fake.put(out_of_sync_caddy())
    fake.respond("PATCH", 500, "etcdserver: request timed out")
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        "The API server failed while trying to request a refresh of 'caddy' (500 Internal Server Error) "
        "(etcdserver: request timed out); check the control plane and retry."
    )


def test_app_missing_in_cluster(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert caught.value.message == (
        "Application 'caddy' does not exist in namespace 'argocd'; sync the root app first: "
        "inv argocd.sync --app=blumeops."
    )


def test_unknown_app_names_closest_and_known(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        run_sync(ctx, app="cady")
    assert caught.value.message == (
        "No app named 'cady' in argocd/ (closest: caddy); known apps: blumeops, caddy, homepage, miniflux."
    )
    assert fake.requests() == []


def test_unpushed_head_is_refused_before_any_request(ctx: Context, fake: FakeArgo, gitrepo: GitRepo) -> None:
    fake.put(out_of_sync_caddy())
    sha = gitrepo.commit_file("argocd/manifests/caddy/Caddyfile", ":80 {\n}\n", "local only")
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.message == (
        f"Commit {sha[:12]} is not on origin/main, the branch ArgoCD reads, so it can never be deployed; "
        f"git push origin main first."
    )
    assert fake.requests() == []


def test_short_revision_is_expanded_and_dry_run_sets_dry_run(ctx: Context, fake: FakeArgo, gitrepo: GitRepo) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[
            RUNNING,
            finished("Succeeded", "successfully synced (dry run)", [{**DEPLOY, "status": "Synced"}], gitrepo.head()),
        ],
    )
    head = gitrepo.head()
    run_sync(ctx, revision=head[:7], dry_run=True, prune=True)
    assert fake.patches("caddy")[-1] == expected_sync_patch("1001", revision=head, prune=True, dry_run=True)


def test_unknown_revision_is_refused(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        run_sync(ctx, revision="deadbee")
    assert caught.value.message == (
        "Revision 'deadbee' is not a commit in this clone; check the SHA, or git fetch first."
    )
    assert fake.requests() == []


def test_no_terminal_without_yes_is_declined_after_the_diff(ctx: Context, fake: FakeArgo, tmp_path: Path) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]})
    with pytest.raises(Exit) as caught:
        run_sync(ctx, yes=False)
    assert caught.value.code == 1
    assert caught.value.message == (
        "Refusing to sync caddy without confirmation: no terminal to ask on; read the plan above and re-run with --yes."
    )
    assert fake.patches("caddy") == [REFRESH]  # the refresh for the diff, never an operation
    assert journal(tmp_path)[-1]["result"] == "declined"


def test_already_synced_and_healthy_does_nothing(
    ctx: Context, fake: FakeArgo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake.put(application("caddy", resources=[{**DEPLOY, "status": "Synced"}]))
    run_sync(ctx)
    assert fake.patches("caddy") == [REFRESH]
    assert "caddy: already Synced and Healthy at 00000000; nothing to sync." in capsys.readouterr().out
    entry = journal(tmp_path)[-1]  # nothing done is still on record: what was checked, when, at which commit
    assert entry["result"] == "no-changes"
    assert entry["task"] == "argocd.sync"
    assert entry["targets"] == ["caddy"]


def test_timeout_must_be_a_number(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        run_sync(ctx, timeout="soon")
    assert caught.value.message == "--timeout must be a number of seconds, not 'soon'."
    assert fake.requests() == []


def test_remote_that_is_not_argocds_repo_is_named(
    ctx: Context, fake: FakeArgo, gitrepo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put(application("caddy", resources=[{**DEPLOY, "status": "Synced"}]))
    run_sync(ctx)
    err = " ".join(capsys.readouterr().err.split())  # undo the console's line wrapping
    assert (
        f"remote 'origin' is {gitrepo.remote}, but ArgoCD reads https://forge.ops.eblu.me/eblume/blumeops.git; "
        "the pushed check below is only as good as that match (set blumeops.argocd.remote)"
    ) in err


def test_remote_ahead_of_head_is_said(
    ctx: Context, fake: FakeArgo, gitrepo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(gitrepo.remote), str(other)], check=True)
    (other / "NOTES.md").write_text("from another machine\n")
    subprocess.run(["git", "-C", str(other), "add", "NOTES.md"], check=True)
    subprocess.run(["git", "-C", str(other), "commit", "-qm", "elsewhere"], check=True)
    subprocess.run(["git", "-C", str(other), "push", "-q"], check=True)
    rev_parse = ["git", "-C", str(other), "rev-parse", "HEAD"]
    tip = subprocess.run(rev_parse, capture_output=True, text=True, check=True).stdout
    fake.put(application("caddy", resources=[{**DEPLOY, "status": "Synced"}]))
    with pytest.raises(Exit) as caught:  # even with nothing to sync: the guard wants a clone that is not behind
        run_sync(ctx)
    assert "is 1 commit behind origin/main" in caught.value.message
    err = " ".join(capsys.readouterr().err.split())
    assert (f"origin/main is at {tip[:12]}, ahead of your HEAD {gitrepo.head()[:12]}: ArgoCD deploys {tip[:12]}") in err
    assert journal(tmp_path)[-1]["result"] == "refused"


def test_success_is_journaled_with_the_summary(ctx: Context, fake: FakeArgo, gitrepo: GitRepo, tmp_path: Path) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, succeeded(gitrepo.head(), "Healthy")],
    )
    run_sync(ctx)
    assert journal(tmp_path)[-1]["message"] == f"Synced and Healthy at {gitrepo.head()[:8]}"


# --- the live Application against git, the deployed revision, the timeout (issue 11) -------------


def feature_branch_caddy() -> dict[str, Any]:
    app = out_of_sync_caddy()
    app["spec"]["source"]["targetRevision"] = "feature-x"
    return app


def test_diverged_live_app_is_refused_and_nothing_patched(ctx: Context, fake: FakeArgo) -> None:
    fake.put(feature_branch_caddy())
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    message = str(caught.value.message)
    assert "live targetRevision 'feature-x', git says 'main'" in message
    assert "--allow-diverged" in message
    assert "inv argocd.sync --app=blumeops" in message
    assert fake.patches("caddy") == []
    assert fake.seen_operations == []


def test_allow_diverged_checks_the_live_branch_commit_and_journals_the_override(
    ctx: Context, fake: FakeArgo, gitrepo: GitRepo, tmp_path: Path
) -> None:
    gitrepo.git("checkout", "-q", "-b", "feature-x")
    feature = gitrepo.commit_file("argocd/manifests/caddy/NOTES", "try\n", "feature")
    gitrepo.git("push", "-q", "origin", "feature-x")
    gitrepo.git("checkout", "-q", "main")
    fake.put(feature_branch_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, succeeded(feature, "Healthy")],
    )
    run_sync(ctx, allow_diverged=True)
    entry = journal(tmp_path)[-1]
    assert entry["result"] == "succeeded"
    assert "--allow-diverged: live targetRevision 'feature-x', git says 'main'" in entry["message"]
    assert entry["message"].endswith(f"Synced and Healthy at {feature[:8]}")


def test_a_sync_that_deployed_another_revision_is_not_a_success(
    ctx: Context, fake: FakeArgo, gitrepo: GitRepo, tmp_path: Path
) -> None:
    fake.put(out_of_sync_caddy())
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, succeeded("e" * 40, "Healthy")],  # e.g. the live app read another branch
    )
    with pytest.raises(Exit) as caught:
        run_sync(ctx)
    assert caught.value.code == 1
    assert f"ArgoCD reports eeeeeeeeeeee deployed, not {gitrepo.head()[:12]} as asked" in str(caught.value.message)
    entry = journal(tmp_path)[-1]
    assert entry["result"] == "failed"
    assert "succeeded" not in entry["result"]


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
def test_timeout_that_is_not_a_positive_finite_number_stops_before_anything(
    ctx: Context, fake: FakeArgo, tmp_path: Path, value: str
) -> None:
    fake.put(out_of_sync_caddy())
    with pytest.raises(Exit) as caught:
        run_sync(ctx, timeout=value)
    assert caught.value.code == 1
    assert caught.value.message == f"--timeout must be a positive number of seconds, not {value!r}."
    assert fake.requests() == []
    assert journal(tmp_path) == []
