"""`inv check --changed`, run the way the shipped pre-commit hook runs it, on a temp git repo."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, clean_environ, require_tool

FIXTURE = REPO / "tests" / "fixtures" / "homelab"


def hook_entry() -> str:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "blumeops-check"]
    assert hook["language"] == "system"
    assert hook["pass_filenames"] is False
    local = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    used = [h for repo in local["repos"] for h in repo["hooks"] if h["id"] == "blumeops-check"]
    assert used
    assert used[0]["entry"] == hook["entry"]
    return str(hook["entry"])


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True)


def homelab_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "homelab"
    shutil.copytree(FIXTURE, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "homelab")
    env = clean_environ(tmp_path, {"PYTHONPATH": str(REPO), "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state")})
    env["PATH"] = f"{Path(require_tool('inv')).parent}{os.pathsep}{env.get('PATH', '')}"
    return root, env


def run_hook(root: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The hook's entry exactly as pre-commit/prek would run it (from the repo root, no file names),
    with --json so the rows can be read."""
    done = subprocess.run(
        f"{hook_entry()} --json",
        shell=True,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def stage_edit(root: Path, relative: str, line: str = "# edited\n") -> None:
    path = root / relative
    path.write_text(path.read_text() + line)
    git(root, "add", relative)


def rows(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["layer"], r["name"]): r for r in doc["checks"]}


def test_an_app_file_checks_that_app_only(tmp_path: Path) -> None:
    require_tool("kubectl")
    root, env = homelab_repo(tmp_path)
    stage_edit(root, "argocd/manifests/whoami/deployment.yaml")
    code, doc = run_hook(root, env)
    assert code == 0, doc
    assert doc["scope"] == {"argocd": ["argocd/manifests/whoami/deployment.yaml"]}
    assert set(rows(doc)) == {
        ("argocd", "paths exist"),
        ("argocd", "app whoami"),
        ("argocd", "apps and manifests pair up"),
        ("argocd", "no committed secrets"),
        ("argocd", "render whoami"),
    }


def test_a_role_file_checks_the_playbooks_that_run_it_and_caches_on_content(tmp_path: Path) -> None:
    require_tool("ansible-playbook")
    root, env = homelab_repo(tmp_path)
    stage_edit(root, "ansible/roles/motd/tasks/main.yml")
    code, doc = run_hook(root, env)
    assert code == 0, doc
    found = rows(doc)
    assert {layer for layer, _name in found} == {"hosts"}
    assert set(found) == {
        ("hosts", "paths exist"),
        ("hosts", "argument specs = defaults"),
        ("hosts", "ansible_managed headers"),
        ("hosts", "syntax site.yml"),  # linux.yml and macos.yml run motd; site.yml imports both
    }
    assert found[("hosts", "argument specs = defaults")]["detail"].startswith("motd:")
    syntax = found[("hosts", "syntax site.yml")]
    assert syntax["status"] == "ok"
    assert "cached" not in syntax["detail"]
    assert "motd" in syntax["detail"]
    # Unchanged since: the pass is reused. An edit to a file the graph reads parses it again.
    code, doc = run_hook(root, env)
    assert "cached" in rows(doc)[("hosts", "syntax site.yml")]["detail"]
    stage_edit(root, "ansible/roles/motd/tasks/main.yml", "- name: Motd | broken\n  ansible.builtin.nosuchmodule: {}\n")
    code, doc = run_hook(root, env)
    assert code == 1
    syntax = rows(doc)[("hosts", "syntax site.yml")]
    assert syntax["status"] == "fail"
    assert "nosuchmodule" in syntax["detail"]


def test_a_file_no_layer_owns_checks_nothing(tmp_path: Path) -> None:
    root, env = homelab_repo(tmp_path)
    stage_edit(root, "README.md")
    code, doc = run_hook(root, env)
    assert (code, doc["checks"], doc["scope"], doc["changed"]) == (0, [], {}, ["README.md"])
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "readme")
    code, doc = run_hook(root, env)
    assert (code, doc["checks"], doc["changed"]) == (0, [], [])


def test_since_adds_the_commits_and_a_bad_ref_is_one_sentence(tmp_path: Path) -> None:
    root, env = homelab_repo(tmp_path)
    stage_edit(root, "pulumi/tailscale/policy.hujson", "\n")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "policy")
    command = shlex.split(hook_entry())
    done = subprocess.run(
        [*command, "--since=HEAD~1", "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    doc = json.loads(done.stdout)
    assert doc["scope"] == {"tailnet": ["pulumi/tailscale/policy.hujson"]}
    assert {layer for layer, _name in rows(doc)} == {"tailnet"}
    bad = subprocess.run(
        [*command, "--since=nosuchref"], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert bad.returncode == 1
    assert "names no commit" in bad.stderr + bad.stdout


def test_a_custom_resource_is_validated_against_a_crd_in_an_app_not_checked(tmp_path: Path) -> None:
    """web's ExternalSecret is described by the CRD in the external-secrets app: --changed renders
    that app too, for its CRD, and shows no row for it."""
    require_tool("kubectl")
    root, env = homelab_repo(tmp_path)
    stage_edit(root, "argocd/workloads/web/overlays/home/replicas.yaml")
    code, doc = run_hook(root, env)
    assert code == 0, doc
    found = rows(doc)
    assert ("argocd", "render external-secrets") not in found
    assert "1 against a CRD in the repo" in found[("argocd", "render web")]["detail"]


def test_worker_processes_give_the_threads_verdicts(tmp_path: Path) -> None:
    """Rendering and validation in worker processes (forced with a threshold of 1) and in threads:
    the same rows, and a second run reads the renders from the cache."""
    require_tool("kubectl")
    root, env = homelab_repo(tmp_path)
    command = [sys.executable, "-m", "invoke", "check", "--layer=argocd", "--json"]

    def verdicts(extra: dict[str, str], state: str) -> dict[tuple[str, str], tuple[str, str]]:
        done = subprocess.run(
            command,
            cwd=root,
            env={**env, **extra, "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / state)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return {key: (r["status"], r["detail"]) for key, r in rows(json.loads(done.stdout)).items()}

    threads = verdicts({}, "threads")
    processes = verdicts({"BLUMEOPS_ARGOCD_POOL_MIN_APPS": "1"}, "processes")
    assert processes == threads
    assert "against a CRD in the repo" in threads[("argocd", "render web")][1]
    again = verdicts({}, "threads")
    assert "cached" in again[("argocd", "render web")][1]
    assert {k: v[0] for k, v in again.items()} == {k: v[0] for k, v in threads.items()}
