"""argocd.history and argocd.rollback against kmock over real HTTP, with the scripted controller
playing ArgoCD and a real git clone pushed to a bare remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks.argocd import app_state, tasks
from blumeops_tasks.argocd import history as hist
from tests.argocd.conftest import GitRepo
from tests.argocd.fake_argo import REPO_URL, FakeArgo, Script, application
from tests.argocd.test_sync import DEPLOY, RUNNING, finished, journal

USER = "tester@blumeops"
SOURCE = {"repoURL": REPO_URL, "path": "argocd/manifests/caddy", "targetRevision": "main"}


class Deployed:
    """Three pushed commits, each touching caddy's files, deployed as history ids 1, 2, 3."""

    def __init__(self, gitrepo: GitRepo) -> None:
        self.repo = gitrepo
        self.first = gitrepo.head()
        self.second = gitrepo.commit_file("argocd/manifests/caddy/NOTES", "two\n", "caddy: second")
        self.third = gitrepo.commit_file("argocd/manifests/caddy/NOTES", "three\n", "caddy: third")
        gitrepo.git("push", "-q", "origin", "main")

    def history(self) -> list[dict[str, Any]]:
        return [
            {"id": 1, "revision": self.first, "deployedAt": "2026-11-20T10:00:00Z", "source": SOURCE},
            {
                "id": 2,
                "revision": self.second,
                "deployedAt": "2026-11-21T10:00:00Z",
                "deployStartedAt": "2026-11-21T09:59:58Z",
                "source": SOURCE,
                "initiatedBy": {"username": "erich@blumeops"},
            },
            {
                "id": 3,
                "revision": self.third,
                "deployedAt": "2026-11-22T10:00:00Z",
                "source": SOURCE,
                "initiatedBy": {"automated": True},
            },
        ]

    def app(self, **spec: Any) -> dict[str, Any]:
        obj = application("caddy", sync={"status": "Synced", "revision": self.third}, history=self.history())
        obj["spec"]["syncPolicy"] = {"syncOptions": ["CreateNamespace=true"]}
        obj["spec"].update(spec)
        return obj


@pytest.fixture
def deployed(gitrepo: GitRepo) -> Deployed:
    return Deployed(gitrepo)


def rolled_back(revision: str, head: str) -> dict[str, Any]:
    """The operation finished at `revision`; git's branch (`head`) is now ahead of it: OutOfSync."""
    return finished(
        "Succeeded",
        "successfully synced (all tasks run)",
        [{**DEPLOY, "status": "Synced", "message": "deployment.apps/caddy configured"}],
        revision,
        sync={"status": "OutOfSync", "revision": head},
        health={"status": "Healthy"},
        reconciledAt="NOW",
    )


def expected_rollback_patch(rv: str, revision: str, *, prune: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": rv},
        "operation": {
            "initiatedBy": {"username": USER, "automated": False},
            "sync": {
                "prune": prune,
                "dryRun": False,
                "syncStrategy": {"apply": {}},
                "revision": revision,
                "syncOptions": ["CreateNamespace=true"],
                "source": SOURCE,
            },
            "info": [{"name": "reason", "value": f"inv argocd.rollback to history id 1 by {USER}"}],
        },
        "status": {"operationState": None},
    }


def run_rollback(ctx: Context, **kwargs: Any) -> None:
    kwargs.setdefault("app", "caddy")
    kwargs.setdefault("to", "1")
    kwargs.setdefault("yes", True)
    tasks.rollback(ctx, **kwargs)


# --- history --------------------------------------------------------------------------------


def test_history_lists_newest_first_and_marks_the_current_one(
    ctx: Context, fake: FakeArgo, deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put(deployed.app())
    tasks.history(ctx, app="caddy")
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if deployed.first[:12] in line or deployed.third[:12] in line]
    assert len(lines) == 2
    assert deployed.third[:12] in lines[0]  # id 3 first
    assert "3 (current)" in lines[0]
    assert "caddy: third" in lines[0]  # the commit's subject, from git
    assert "auto-sync" in lines[0]
    assert deployed.first[:12] in lines[1]
    assert "(current)" not in lines[1]
    assert "erich@blumeops" in out
    assert "argocd/manifests/caddy@main" in out
    assert fake.patches("caddy") == []  # read-only


def test_history_json_is_one_document(
    ctx: Context, fake: FakeArgo, deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.put(deployed.app())
    tasks.history(ctx, app="caddy", json=True)
    doc = json.loads(capsys.readouterr().out)
    assert (doc["exit_code"], doc["error"], doc["app"], doc["current"]) == (0, None, "caddy", 3)
    assert [e["id"] for e in doc["history"]] == [3, 2, 1]
    assert [e["current"] for e in doc["history"]] == [True, False, False]
    second = doc["history"][1]
    assert second["revision"] == deployed.second
    assert second["deployed_at"] == "2026-11-21T10:00:00Z"
    assert second["deploy_started_at"] == "2026-11-21T09:59:58Z"
    assert second["source"] == SOURCE
    assert second["initiated_by"] == {"username": "erich@blumeops"}
    assert doc["history"][2]["initiated_by"] is None
    assert doc["auto_sync"] is False


def test_history_of_an_app_never_deployed(ctx: Context, fake: FakeArgo, capsys: pytest.CaptureFixture[str]) -> None:
    fake.put(application("caddy"))
    tasks.history(ctx, app="caddy", json=True)
    doc = json.loads(capsys.readouterr().out)
    assert (doc["exit_code"], doc["current"], doc["history"]) == (0, None, [])


def test_history_of_an_app_missing_in_the_cluster_is_one_sentence(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        tasks.history(ctx, app="caddy")
    assert caught.value.code == 1
    assert "Application 'caddy' does not exist in namespace 'argocd'" in str(caught.value.message)


# --- rollback refused -----------------------------------------------------------------------


@pytest.mark.parametrize("automated", [{}, {"prune": True, "selfHeal": True}, {"enabled": True}])
def test_rollback_is_refused_while_auto_sync_is_on_and_nothing_is_patched(
    ctx: Context, fake: FakeArgo, deployed: Deployed, tmp_path: Path, automated: dict[str, Any]
) -> None:
    fake.put(deployed.app(syncPolicy={"automated": automated}))
    with pytest.raises(Exit) as caught:
        run_rollback(ctx)
    assert caught.value.code == 1
    assert "rollback cannot be initiated when auto-sync is enabled" in str(caught.value.message)
    assert fake.patches("caddy") == []
    assert fake.seen_operations == []
    assert journal(tmp_path) == []


def test_auto_sync_switched_off_by_enabled_false_is_not_auto_sync() -> None:
    from blumeops_tasks.argocd.apps import LocalApp

    off = {"spec": {"syncPolicy": {"automated": {"enabled": False, "prune": True}}}}
    on = {"spec": {"syncPolicy": {"automated": {}}}}  # ArgoCD: present, even empty, is on
    assert not app_state.auto_sync_enabled(off)
    assert hist.refusal(off) is None
    assert app_state.auto_sync_enabled(on)
    assert app_state.view(on).automated  # argocd.status and argocd.sync read it the same way
    assert LocalApp("x", Path("argocd/apps/x.yaml"), on).automated
    assert not LocalApp("x", Path("argocd/apps/x.yaml"), off).automated


def test_unknown_id_names_the_known_ids(ctx: Context, fake: FakeArgo, deployed: Deployed) -> None:
    fake.put(deployed.app())
    with pytest.raises(Exit) as caught:
        run_rollback(ctx, to="7")
    assert caught.value.code == 1
    message = str(caught.value.message)
    assert "no deployment with id 7" in message
    assert "known ids: 1, 2, 3" in message
    assert fake.patches("caddy") == []


def test_to_must_be_a_whole_number(ctx: Context, fake: FakeArgo) -> None:
    with pytest.raises(Exit) as caught:
        run_rollback(ctx, to="abc123")
    assert caught.value.code == 1
    assert "--to must be a history id" in str(caught.value.message)
    assert fake.requests() == []


def test_a_revision_not_on_the_remote_branch_is_refused(
    ctx: Context, fake: FakeArgo, deployed: Deployed, gitrepo: GitRepo
) -> None:
    gitrepo.git("checkout", "-q", "-b", "feature-x")
    feature = gitrepo.commit_file("argocd/manifests/caddy/NOTES", "try\n", "feature")
    gitrepo.git("push", "-q", "origin", "feature-x")
    gitrepo.git("checkout", "-q", "main")
    app = deployed.app()
    app["status"]["history"].append(
        {"id": 4, "revision": feature, "deployedAt": "2026-11-23T10:00:00Z", "source": SOURCE}
    )
    fake.put(app)
    with pytest.raises(Exit) as caught:
        run_rollback(ctx, to="4")
    assert caught.value.code == 1
    assert f"Commit {feature[:12]} (history id 4 of 'caddy') is not on origin/main" in str(caught.value.message)
    assert fake.patches("caddy") == []


def test_operation_in_progress_is_refused(ctx: Context, fake: FakeArgo, deployed: Deployed) -> None:
    app = deployed.app()
    app["operation"] = {"sync": {"revision": ""}}
    fake.put(app)
    with pytest.raises(Exit) as caught:
        run_rollback(ctx)
    assert "Another operation is already in progress on 'caddy'" in str(caught.value.message)
    assert fake.patches("caddy") == []


def test_no_terminal_without_yes_is_declined_and_journaled(
    ctx: Context, fake: FakeArgo, deployed: Deployed, tmp_path: Path
) -> None:
    fake.put(deployed.app())
    with pytest.raises(Exit) as caught:
        run_rollback(ctx, yes=False)
    assert caught.value.code == 1
    assert "Refusing to roll back caddy without confirmation" in str(caught.value.message)
    assert fake.patches("caddy") == []
    assert journal(tmp_path)[-1]["result"] == "declined"


# --- rollback done --------------------------------------------------------------------------


def test_rollback_syncs_to_the_entry_journals_it_and_pending_counts_from_it(
    ctx: Context,
    fake: FakeArgo,
    deployed: Deployed,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.put(deployed.app())
    fake.scripts["caddy"] = Script(on_operation=[RUNNING, rolled_back(deployed.first, deployed.third)])
    run_rollback(ctx)
    # One operation, preconditioned on the resourceVersion read: the argocd server's Rollback.
    assert fake.patches("caddy") == [expected_rollback_patch("1", deployed.first)]
    out = capsys.readouterr().out
    assert f"caddy: now running {deployed.third[:12]} (history id 3" in out
    assert f"caddy: rolling back to {deployed.first[:12]} (history id 1" in out
    assert "2 commit(s) touching its files are taken back" in out
    assert "caddy: second" in out
    assert out.rstrip().endswith(f"caddy: Healthy at {deployed.first[:8]}, OutOfSync with git")
    entry = journal(tmp_path)[-1]
    assert (entry["task"], entry["targets"], entry["result"], entry["exit_code"]) == (
        "argocd.rollback",
        ["caddy"],
        "rolled-back",
        0,
    )
    assert entry["commit"] == deployed.repo.head()  # where the operator stood
    assert entry["deployed"] == deployed.first  # what caddy runs now
    assert "rollback to history id 1" in entry["message"]
    assert f"not at origin/main {deployed.third[:12]}" in entry["message"]

    from blumeops_tasks.argocd.layer import LAYER
    from blumeops_tasks.gitops.tasks import pending_report

    layer = pending_report(ctx, [LAYER])["layers"][0]
    caddy = next(row for row in layer["targets"] if row["target"] == "caddy")
    assert caddy["state"] == "pending"  # never "up-to-date": caddy runs an older commit than HEAD
    assert caddy["commits"] == 2
    assert caddy["last_apply"]["commit"] == deployed.first


def test_conflict_rereads_and_retries_with_the_new_resource_version(
    ctx: Context, fake: FakeArgo, deployed: Deployed
) -> None:
    fake.put(deployed.app())
    fake.scripts["caddy"] = Script(on_operation=[RUNNING, rolled_back(deployed.first, deployed.third)])
    fake.set_interlopers(1)
    run_rollback(ctx)
    assert fake.patches("caddy") == [
        expected_rollback_patch("1", deployed.first),
        expected_rollback_patch("1000", deployed.first),
    ]


def test_a_rollback_that_deployed_another_revision_fails(
    ctx: Context, fake: FakeArgo, deployed: Deployed, tmp_path: Path
) -> None:
    fake.put(deployed.app())
    fake.scripts["caddy"] = Script(on_operation=[RUNNING, rolled_back(deployed.second, deployed.third)])
    with pytest.raises(Exit) as caught:
        run_rollback(ctx)
    assert caught.value.code == 1
    assert f"ArgoCD reports {deployed.second[:12]} deployed, not {deployed.first[:12]} as asked" in str(
        caught.value.message
    )
    entry = journal(tmp_path)[-1]
    assert entry["result"] == "failed"
    assert "deployed" not in entry


def test_a_failed_rollback_names_the_resources(
    ctx: Context, fake: FakeArgo, deployed: Deployed, tmp_path: Path
) -> None:
    fake.put(deployed.app())
    invalid = "admission webhook denied the request"
    failed = finished(
        "Failed", "one or more objects failed to apply", [{**DEPLOY, "status": "SyncFailed", "message": invalid}]
    )
    fake.scripts["caddy"] = Script(on_operation=[RUNNING, failed])
    with pytest.raises(Exit) as caught:
        run_rollback(ctx, prune=True)
    assert caught.value.code == 1
    assert invalid in str(caught.value.message)
    assert fake.patches("caddy")[0]["operation"]["sync"]["prune"] is True
    assert journal(tmp_path)[-1]["result"] == "failed"


def test_multi_source_entry_sends_revisions_and_sources() -> None:
    chart = {"repoURL": "https://charts.example/", "chart": "grafana", "targetRevision": "8.0.0"}
    values = {"repoURL": REPO_URL, "ref": "values", "targetRevision": "main"}
    raw = {"id": 5, "revisions": ["8.0.0", "a" * 40], "sources": [chart, values], "deployedAt": "2026-11-20T10:00:00Z"}
    deployment = hist.deployments({"status": {"history": [raw]}})[0]
    assert hist.git_revisions(deployment, REPO_URL) == ["a" * 40]  # the chart version is ArgoCD's to check
    body = hist.rollback_patch("9", {}, deployment, username=USER)
    assert body["operation"]["sync"]["revisions"] == ["8.0.0", "a" * 40]
    assert body["operation"]["sync"]["sources"] == [chart, values]
    assert "revision" not in body["operation"]["sync"]
    assert "source" not in body["operation"]["sync"]
