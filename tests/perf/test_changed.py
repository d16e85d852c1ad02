"""`inv check --changed`, run the way the shipped pre-commit hook runs it, on a temp git repo."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, clean_environ, require_tool, run_inv

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

    def verdicts(extra: dict[str, str], state: str) -> dict[tuple[str, str], tuple[str, str]]:
        done = run_inv(
            "check",
            "--layer=argocd",
            "--json",
            cwd=root,
            env={**env, **extra, "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / state)},
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


def test_a_role_edit_checks_only_the_graphs_that_run_the_role(tmp_path: Path) -> None:
    """Two playbook graphs: site.yml (motd) and maintenance.yml (a role of its own). After a full
    check has parsed both, an edit to either role re-checks only the graph that runs it."""
    require_tool("ansible-playbook")
    root, env = homelab_repo(tmp_path)
    extra = root / "ansible" / "roles" / "cleanup"
    (extra / "tasks").mkdir(parents=True)
    (extra / "tasks" / "main.yml").write_text(
        "---\n- name: Cleanup | old files\n  ansible.builtin.file:\n    path: /tmp/old\n    state: absent\n"
    )
    (root / "ansible" / "playbooks" / "maintenance.yml").write_text(
        "---\n- name: Maintenance\n  hosts: linux\n  gather_facts: false\n  roles:\n    - cleanup\n"
    )
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "maintenance")
    full = run_inv("check", "--layer=hosts", "--json", cwd=root, env=env)
    assert {"syntax site.yml", "syntax maintenance.yml"} <= {r["name"] for r in json.loads(full.stdout)["checks"]}
    stage_edit(root, "ansible/roles/cleanup/tasks/main.yml")
    _code, doc = run_hook(root, env)
    names = {name for _layer, name in rows(doc)}
    assert "syntax maintenance.yml" in names
    assert "syntax site.yml" not in names
    git(root, "reset", "-q", "--hard")
    stage_edit(root, "ansible/roles/motd/defaults/main.yml")
    _code, doc = run_hook(root, env)
    names = {name for _layer, name in rows(doc)}
    assert "syntax site.yml" in names
    assert "syntax maintenance.yml" not in names


def test_the_strategy_loaders_pass_is_cached_and_a_failure_is_not(tmp_path: Path, monkeypatch: Any) -> None:
    from invoke.config import Config
    from invoke.context import Context

    from blumeops_tasks.hosts import checks
    from blumeops_tasks.hosts.project import project
    from blumeops_tasks.namespace import build_namespace

    require_tool("ansible-playbook")
    blumeops = dict(build_namespace(REPO).configuration()["blumeops"])
    blumeops.update(root=str(REPO), state_dir=str(tmp_path / "state"))
    c = Context(Config(overrides={"blumeops": blumeops}))
    p = project(c)
    assert checks._strategy(c, p).status == "ok"
    calls: list[str] = []
    monkeypatch.setattr(checks.shell, "run", lambda *args, **_kw: calls.append(str(args[1])))
    assert checks._strategy(c, p).status == "ok"
    assert calls == []  # answered from the cache
    monkeypatch.undo()
    monkeypatch.setenv("ANSIBLE_STRATEGY", "no_such_strategy")
    broken = checks._strategy(c, p)
    assert broken.status == "fail"
    assert "no_such_strategy" in broken.detail
    assert checks._strategy(c, p).status == "fail"  # never cached: asked again, still failing


def test_all_requirements_installed_is_cached_until_an_install_or_removal(tmp_path: Path) -> None:
    """`requirements installed` asks ansible-galaxy once; then, until a collection is installed or
    removed (or requirements.yml changes), the cached answer stands. A missing one is always asked."""
    galaxy = require_tool("ansible-galaxy")
    root, env = homelab_repo(tmp_path)
    log = tmp_path / "galaxy.log"
    wrapper = tmp_path / "galaxy"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {galaxy} "$@"\n')
    wrapper.chmod(0o755)
    env = {**env, "INVOKE_BLUMEOPS_HOSTS_ANSIBLE_GALAXY": str(wrapper)}

    def requirements_row() -> dict[str, Any]:
        done = run_inv("check", "--layer=hosts", "--json", cwd=root, env=env)
        return rows(json.loads(done.stdout))[("hosts", "requirements installed")]

    def listings() -> int:
        return log.read_text().count("collection list") if log.exists() else 0

    assert requirements_row()["status"] == "warn"  # homelab.tools is not installed yet
    deps = run_inv("hosts.deps", cwd=root, env=env)
    assert deps.returncode == 0, deps.stdout + deps.stderr
    before = listings()
    assert requirements_row()["status"] == "ok"
    assert listings() == before + 1
    assert requirements_row()["status"] == "ok"
    assert listings() == before + 1  # answered from the cache
    shutil.rmtree(root / "ansible" / "collections" / "ansible_collections" / "homelab")
    assert requirements_row()["status"] == "warn"
    assert listings() == before + 2


def test_a_secret_in_a_changed_file_fails_the_secrets_row(tmp_path: Path) -> None:
    root, env = homelab_repo(tmp_path)
    secret = root / "argocd" / "manifests" / "whoami" / "token.yaml"
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: hunter2\n")
    git(root, "add", "argocd/manifests/whoami/token.yaml")
    code, doc = run_hook(root, env)
    assert code == 1
    row = rows(doc)[("argocd", "no committed secrets")]
    assert row["status"] == "fail"
    assert "argocd/manifests/whoami/token.yaml" in row["detail"]
    assert "hunter2" not in json.dumps(doc)
