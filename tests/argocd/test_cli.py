"""The operator's entry points for real: `inv argocd.*` and `mise run argocd-sync` in subprocesses,
talking to kmock over HTTP, with the repo root pointed at a pushed temporary clone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.argocd.conftest import GIT_IDENTITY, GitRepo
from tests.argocd.fake_argo import FakeArgo, Script, application
from tests.argocd.test_sync import DEPLOY, RUNNING, succeeded
from tests.conftest import clean_environ, mise_environ, run_inv, run_mise

pytestmark = pytest.mark.slow


@pytest.fixture
def env(isolated_env: Path, gitrepo: GitRepo, kubeconfig: Path, tmp_path: Path) -> dict[str, str]:
    return clean_environ(
        isolated_env,
        {
            **GIT_IDENTITY,
            "USER": "tester",
            "INVOKE_BLUMEOPS_ROOT": str(gitrepo.root),
            "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state"),
            "INVOKE_BLUMEOPS_ARGOCD_KUBECONFIG": str(kubeconfig),
            "INVOKE_BLUMEOPS_ARGOCD_REFRESH_TIMEOUT": "5",
            "INVOKE_BLUMEOPS_ARGOCD_SYNC_TIMEOUT": "10",
        },
    )


def script_success(fake: FakeArgo, revision: str) -> None:
    fake.put(application("caddy", sync={"status": "OutOfSync"}, resources=[{**DEPLOY, "status": "OutOfSync"}]))
    fake.scripts["caddy"] = Script(
        on_refresh={"resources": [{**DEPLOY, "status": "OutOfSync"}]},
        on_operation=[RUNNING, succeeded(revision, "Healthy")],
    )


def test_inv_sync_end_to_end(fake: FakeArgo, env: dict[str, str], gitrepo: GitRepo) -> None:
    script_success(fake, gitrepo.head())
    result = run_inv("argocd.sync", "--app=caddy", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert f"caddy: Synced and Healthy at {gitrepo.head()[:8]}" in result.stdout
    assert "Traceback" not in result.stderr
    assert len(fake.patches("caddy")) == 2
    assert fake.seen_operations[0][1]["initiatedBy"] == {"username": "tester@blumeops", "automated": False}


def test_inv_sync_without_terminal_refuses(fake: FakeArgo, env: dict[str, str], gitrepo: GitRepo) -> None:
    script_success(fake, gitrepo.head())
    result = run_inv("argocd.sync", "--app=caddy", env=env)
    assert result.returncode == 1
    assert "Refusing to sync caddy without confirmation: no terminal to ask on" in result.stderr
    assert fake.seen_operations == []


def test_inv_diff_json_exit_2(fake: FakeArgo, env: dict[str, str], gitrepo: GitRepo) -> None:
    script_success(fake, gitrepo.head())
    result = run_inv("argocd.diff", "--app=caddy", "--json", env=env)
    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)  # the shared plan document, and nothing else on stdout
    assert (document["exit_code"], document["error"]) == (2, None)
    assert document["layers"][0]["targets"][0]["changes"][0]["resource"] == "Deployment.apps/caddy/caddy"


def test_inv_diff_and_status_json_errors_are_one_document(env: dict[str, str]) -> None:
    for args in (("argocd.diff", "--app=cady", "--json"), ("argocd.status", "--json")):
        bad = {**env, "INVOKE_BLUMEOPS_ARGOCD_KUBECONFIG": "/nonexistent/kubeconfig"}
        result = run_inv(*args, env=bad)
        assert result.returncode == 1, result.stderr
        document = json.loads(result.stdout)
        assert document["exit_code"] == 1
        assert ("cady" in document["error"]) if args[0] == "argocd.diff" else ("kubeconfig" in document["error"])


def test_inv_status_json(fake: FakeArgo, env: dict[str, str]) -> None:
    fake.put(application("caddy"))
    result = run_inv("argocd.status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert [row["app"] for row in json.loads(result.stdout)["apps"]] == ["blumeops", "caddy", "homepage", "miniflux"]


def test_every_flag_has_help() -> None:
    result = run_inv("--help", "argocd.sync")
    assert result.returncode == 0
    for flag in ("--app", "--prune", "--dry-run", "--revision", "--timeout", "--yes", "--allow-diverged"):
        line = next(line for line in result.stdout.splitlines() if f"{flag}" in line)
        assert line.split(flag, 1)[1].split(None, 1)[-1].strip(), f"{flag} has no help"


def test_mise_argocd_sync_works_like_inv(fake: FakeArgo, env: dict[str, str], gitrepo: GitRepo, tmp_path: Path) -> None:
    script_success(fake, gitrepo.head())
    mise_env = mise_environ(env, tmp_path)
    result = run_mise("run", "argocd-sync", "--", "--app=caddy", "--yes", env=mise_env)
    assert result.returncode == 0, result.stderr
    assert f"caddy: Synced and Healthy at {gitrepo.head()[:8]}" in result.stdout
    unknown = run_mise("run", "argocd-sync", "--", "--app=cady", env=mise_env)
    assert unknown.returncode == 1
    assert "No app named 'cady' in argocd/ (closest: caddy); known apps: blumeops, caddy, homepage, miniflux." in (
        unknown.stderr
    )


def test_inv_history_json_and_rollback_without_terminal(fake: FakeArgo, env: dict[str, str], gitrepo: GitRepo) -> None:
    from tests.argocd.test_history import Deployed

    deployed = Deployed(gitrepo)
    fake.put(deployed.app())
    listed = run_inv("argocd.history", "--app=caddy", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert (document["exit_code"], document["current"]) == (0, 3)
    assert [entry["revision"] for entry in document["history"]] == [deployed.third, deployed.second, deployed.first]
    refused = run_inv("argocd.rollback", "--app=caddy", "--to=1", env=env)
    assert refused.returncode == 1
    assert "Refusing to roll back caddy without confirmation: no terminal to ask on" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert fake.seen_operations == []


def test_rollback_flags_have_help() -> None:
    result = run_inv("--help", "argocd.rollback")
    assert result.returncode == 0
    for flag in ("--app", "--to", "--prune", "--timeout", "--yes"):
        line = next(line for line in result.stdout.splitlines() if f"{flag}" in line)
        assert line.split(flag, 1)[1].split(None, 1)[-1].strip(), f"{flag} has no help"
