"""`inv context`: one page on this repo (under 300 lines) and on a git copy of the fixture homelab."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from invoke.context import Context

from blumeops_tasks import layers
from blumeops_tasks.layer import owned_paths
from blumeops_tasks.loop import context
from tests.conftest import REPO, clean_environ, run_inv
from tests.gitops.helpers import GIT_IDENTITY, Repo, git_env

FIXTURE = REPO / "tests" / "fixtures" / "homelab"


def test_context_of_this_repo_fits_one_page(isolated_env: Path) -> None:
    result = run_inv("context", env=clean_environ(isolated_env))
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert len(page.splitlines()) < 300
    assert "Traceback" not in result.stderr
    for lay in layers.all_layers():
        assert f"- {lay.name}: " in page
        assert f"`inv {lay.apply_task}`" in page
    # hosts with their roles and playbooks, as the inventory and playbooks say
    assert "- indri: groups macos; playbook playbooks/indri.yml; roles caddy, node_exporter, borgmatic" in page
    assert "`inv hosts.provision --host=sifaka`" in page
    # apps with their paths; no kubeconfig here, so the state is from git and says why
    assert "- caddy: argocd/manifests/caddy @ main, manual sync; `inv argocd.sync --app=caddy`" in page
    assert "(from git; live state not read: No kubeconfig" in page
    # tailnet tags and devices from the policy and the program
    assert "- device indri: tag:homelab, tag:indri, tag:k8s-api" in page
    assert "## Pending per layer" in page
    assert "`inv check`" in page
    assert "`inv rollback --layer=LAYER --to=N`" in page


def test_context_json_is_one_document(isolated_env: Path) -> None:
    result = run_inv("context", "--json", "--no-live", env=clean_environ(isolated_env))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["exit_code"], document["error"]) == (0, None)
    assert [row["layer"] for row in document["layers"]] == list(layers.names())
    hosts = {row["host"]: row for row in document["hosts"]["hosts"]}
    assert hosts["gilbert"]["roles"] == ["node_exporter"]
    assert document["apps"]["live_error"] == "--no-live"
    assert document["checks"]["counts"]["fail"] == 0
    assert {row["command"] for row in document["commands"]} >= {"inv check", "inv plan"}


@pytest.fixture
def homelab(tmp_path: Path) -> Path:
    """The fixture homelab, copied and git-initialised (its own tasks.py and invoke.yaml)."""
    copy = tmp_path / "homelab"
    shutil.copytree(FIXTURE, copy, ignore=shutil.ignore_patterns(".blumeops", "__pycache__"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "homelab"]):
        subprocess.run(["git", *args], cwd=copy, env=git_env(), check=True, capture_output=True)
    return copy


def test_context_of_the_fixture_homelab(homelab: Path, isolated_env: Path) -> None:
    result = run_inv("context", "--json", env=clean_environ(isolated_env, GIT_IDENTITY), cwd=homelab)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["repo"] == str(homelab.resolve())
    files = {row["layer"]: row["native_files"] for row in document["layers"]}
    assert files["tailnet"] == ["pulumi/tailscale/"]  # the adopted layout, from invoke.yaml alone
    tailnet = {row["device"]: row["tags"] for row in document["tailnet"]["devices"]}
    assert set(tailnet) == {"indri", "sifaka"}
    assert all(tags for tags in tailnet.values())
    assert document["tailnet"]["tags"]
    # parts of the fixture are written by others: each section holds what is there, or says why not
    if (homelab / "ansible" / "inventory").exists():
        assert document["hosts"]["hosts"], document["hosts"]["error"]
    else:
        assert document["hosts"]["error"]
    if (homelab / "argocd" / "root.yaml").exists():
        assert document["apps"]["apps"]
    assert {row["state"] for row in document["pending"]["layers"]} == {"never-applied"}
    page = run_inv("context", env=clean_environ(isolated_env, GIT_IDENTITY), cwd=homelab)
    assert page.returncode == 0, page.stderr
    assert len(page.stdout.splitlines()) < 300


def full_context(repo: Repo) -> Context:
    """Every layer's defaults (as `inv` composes them), pointed at the temp repo and its state."""
    from invoke.config import Config

    from blumeops_tasks.config import compose_defaults
    from tests.gitops.helpers import LAYER_PATHS

    tree = compose_defaults({lay.name: lay.defaults for lay in layers.all_layers()}, repo.root)["blumeops"]
    tree.update(state_dir=str(repo.state), journal="journal.jsonl")
    for name, paths in LAYER_PATHS.items():
        tree[name].update(paths)
    return Context(config=Config(overrides={"blumeops": tree}))


def test_pending_and_last_applies_from_the_journal(repo: Repo) -> None:
    repo.state.mkdir(parents=True)
    entry = {
        "time": "2026-11-26T04:20:00Z",
        "layer": "hosts",
        "task": "hosts.provision",
        "targets": ["indri", "sifaka"],  # every host: a baseline for the whole layer
        "commit": repo.head(),
        "result": "succeeded",
        "user": "op",
        "machine": "m",
    }
    (repo.state / "journal.jsonl").write_text(json.dumps(entry) + "\n", encoding="utf-8")
    repo.change("roles/caddy/tasks/main.yml", "caddy: tls")
    c = full_context(repo)
    selected = layers.all_layers()
    pending = {row["layer"]: row for row in context.pending_rows(c, selected)["layers"]}
    assert (pending["hosts"]["state"], pending["hosts"]["commits"]) == ("pending", 1)
    assert pending["hosts"]["latest"][0].endswith("caddy: tls")
    if pending["hosts"]["targets"]:  # a journal that keeps targets apart (per-target pending) lists each
        states = {t["target"]: t["state"] for t in pending["hosts"]["targets"]}
        assert states == {"indri": "pending", "sifaka": "pending"}
    (last,) = context.last_applies(c)
    assert (last["task"], last["targets"], last["result"]) == ("hosts.provision", ["indri", "sifaka"], "succeeded")
    rows = {row["layer"]: row for row in context.layer_rows(c, selected)}
    assert rows["hosts"]["native_files"] == list(owned_paths(c, layers.select("hosts")[0]))
    assert "hosts.provision" in rows["hosts"]["tasks"]


def test_apps_sync_state_is_live_when_the_cluster_answers(tmp_path: Path) -> None:
    """Against kmock over real HTTP (tests/argocd/fake_argo.py): live sync/health; git when unreachable."""
    from tests.argocd.conftest import make_context as argocd_context
    from tests.argocd.fake_argo import FakeArgo, application

    server = FakeArgo()
    try:
        server.put(application("caddy", sync={"status": "OutOfSync", "revision": "a" * 40}))
        c = argocd_context(REPO, tmp_path / "state", kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")))
        live = context.apps_overview(c, live=True)
        assert (live["state_from"], live["live_error"]) == ("live", None)
        apps = {row["app"]: row for row in live["apps"]}
        assert (apps["caddy"]["sync"], apps["caddy"]["health"], apps["caddy"]["deployed"]) == (
            "OutOfSync",
            "Healthy",
            "a" * 40,
        )
        assert apps["miniflux"]["sync"] == "Missing"  # in git, not in the cluster
        assert apps["caddy"]["path"] == "argocd/manifests/caddy"
        assert "sync/health live from the cluster" in context.text(_page_with(live))
    finally:
        server.close()
    gone = context.apps_overview(c, live=True)  # the server is gone: from git, saying why
    assert gone["state_from"] == "git"
    assert gone["live_error"]
    assert "sync" not in gone["apps"][0]


def _page_with(apps: dict[str, object]) -> dict[str, object]:
    return {
        "repo": "r",
        "head": None,
        "branch": None,
        "layers": [],
        "apps": apps,
        "pending": {"layers": [], "error": None},
        "last_applies": [],
        "checks": {"counts": {"ok": 0, "warn": 0, "fail": 0, "skip": 0}, "problems": []},
        "commands": [],
    }
