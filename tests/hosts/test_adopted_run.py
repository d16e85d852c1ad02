"""The adopted homelab fixture (tests/fixtures/homelab) previewed and provisioned for real over SSH.

Its linux play (`hosts: linux:!gilbert`) sets a fact in `pre_tasks` from the environment and a role
template uses it: nothing checks that variable offline, and the run renders it. Ansible reaches the
private sshd of conftest.py; the role writes only into the test's own directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from blumeops_tasks.gitops import journal
from tests.conftest import REPO, clean_environ, run_inv
from tests.hosts.conftest import SshdHost

FIXTURE = REPO / "tests" / "fixtures" / "homelab"
TOKEN = "monitoring-token-7713"


def adopted_repo(tmp_path: Path, sshd_host: SshdHost) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "homelab"
    shutil.copytree(FIXTURE, root)
    out = tmp_path / "out"
    out.mkdir()
    inventory = root / "ansible" / "inventory" / "hosts.yml"
    hosts = {
        "sifaka": {**sshd_host.connection_vars(), "motd_path": str(out / "motd")},
        "gilbert": {**sshd_host.connection_vars(), "motd_path": str(out / "gilbert-motd")},
    }
    hosts["sifaka"]["motd_monitoring_env_path"] = str(out / "monitoring.env")
    inventory.write_text(yaml.safe_dump({"all": {"children": {"linux": {"hosts": hosts}}}}, sort_keys=False))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "homelab"], cwd=root, check=True)
    env = clean_environ(
        tmp_path,
        {
            "ANSIBLE_HOME": str(sshd_host.ansible_home),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(sshd_host.control_dir),
            "HOMELAB_MONITORING_TOKEN": TOKEN,
            "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state"),
        },
    )
    return root, env


def test_adopted_repo_previews_and_provisions_with_a_run_time_fact(tmp_path: Path, sshd_host: SshdHost) -> None:
    root, env = adopted_repo(tmp_path, sshd_host)
    out = tmp_path / "out"
    preview = run_inv("hosts.preview", "--json", env=env, cwd=root)
    assert preview.returncode == 2, preview.stdout[-3000:] + preview.stderr[-3000:]
    layer = json.loads(preview.stdout)["layers"][0]
    assert [t["target"] for t in layer["targets"]] == ["sifaka"]  # linux:!gilbert, as Ansible resolves it
    assert TOKEN not in preview.stdout  # the no_log template's content never reaches the plan
    host = sshd_host.sshd.path  # the disposable host's files (its /tmp is an overlay of its own)
    assert not host(out / "motd").exists()  # check mode changed nothing

    apply = ("hosts.provision", "--limit=sifaka", "--tags=motd", "--yes", "--allow-dirty")
    refused = run_inv(*apply, env=env, cwd=root)
    assert refused.returncode == 1  # requirements.yml names a collection that is not installed yet
    assert "not installed from ansible/requirements.yml: collection homelab.tools" in refused.stderr
    deps = run_inv("hosts.deps", env=env, cwd=root)
    assert deps.returncode == 0, deps.stdout + deps.stderr
    result = run_inv(*apply, env=env, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sifaka: the backup disks live here" in host(out / "motd").read_text()  # the fixture's host_vars
    assert host(out / "monitoring.env").read_text().splitlines()[-1] == f"MONITORING_TOKEN={TOKEN}"
    assert not host(out / "gilbert-motd").exists()
    entry = journal.read(tmp_path / "state" / "journal.jsonl")[0][-1]
    assert (entry["result"], entry["targets"], entry["tags"], entry["limit"]) == (
        "succeeded",
        ["sifaka"],
        ["motd"],
        "sifaka",
    )


def test_a_tag_no_task_carries_stops_the_apply_before_anything_runs(tmp_path: Path, sshd_host: SshdHost) -> None:
    root, env = adopted_repo(tmp_path, sshd_host)
    result = run_inv("hosts.provision", "--tags=nosuchtag", "--yes", "--allow-dirty", env=env, cwd=root)
    assert result.returncode == 1
    assert "--tags nosuchtag matches no task" in result.stderr
    assert not sshd_host.sshd.path(tmp_path / "out" / "motd").exists()
