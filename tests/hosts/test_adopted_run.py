"""The adopted homelab fixture (tests/fixtures/homelab) previewed and provisioned for real over SSH.

Its linux play (`hosts: linux:!gilbert`) sets a fact in `pre_tasks` from the environment and a role
template uses it: nothing checks that variable offline, and the run renders it. Ansible reaches the
private sshd of conftest.py; the role writes only into the test's own directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
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


PULL_TASK = """
    - name: A pull lands in the clone while the play runs
      ansible.builtin.shell: >-
        echo 'PULLED MID-RUN' >> {clone}/ansible/roles/motd/templates/motd.j2 &&
        git -C {clone} -c user.name=t -c user.email=t@example.com commit -qam pulled
      delegate_to: localhost
      changed_when: false
      when: not ansible_check_mode
      tags: [always]
"""


def test_a_pull_during_the_provision_never_reaches_the_host(tmp_path: Path, sshd_host: SshdHost) -> None:
    """The play commits a change to the motd template in the clone before the role runs: the host gets
    the template of the commit the journal names, because Ansible reads a snapshot of it. The installed
    collection (git-ignored) is the clone's, linked into the snapshot."""
    root, env = adopted_repo(tmp_path, sshd_host)
    playbook = root / "ansible" / "playbooks" / "linux.yml"
    text = playbook.read_text()
    playbook.write_text(text.replace("  roles:\n", PULL_TASK.format(clone=root) + "  roles:\n", 1))
    (root / ".gitignore").write_text("ansible/collections/\n")
    git = ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "a pull lands mid-run"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    deps = run_inv("hosts.deps", env=env, cwd=root)
    assert deps.returncode == 0, deps.stdout + deps.stderr

    # --allow-dirty only because this clone has no upstream: its files are all committed
    result = run_inv("hosts.provision", "--limit=sifaka", "--yes", "--allow-dirty", env=env, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert head != commit  # the clone moved on during the run
    motd = sshd_host.sshd.path(tmp_path / "out" / "motd").read_text()
    assert "sifaka: the backup disks live here" in motd
    assert "PULLED MID-RUN" not in motd  # the host got the journaled commit's template
    entry = journal.read(tmp_path / "state" / "journal.jsonl")[0][-1]
    assert (entry["result"], entry["commit"], entry["source"], entry["dirty"]) == (
        "succeeded",
        commit,
        "snapshot",
        False,
    )
    assert f"HEAD moved to {head[:12]}" in entry["message"]
    worktrees = subprocess.run([*git, "worktree", "list", "--porcelain"], capture_output=True, text=True, check=True)
    assert worktrees.stdout.count("worktree ") == 1  # the snapshot is gone
    assert (root / "ansible" / "collections").is_dir()  # and the installed collection is still the clone's


SLOW_MARK_TASK = """
    - name: Leaves a mark on the controller when it runs to its end, even in check mode
      ansible.builtin.shell: sleep 20 && touch {mark}
      delegate_to: localhost
      check_mode: false
      changed_when: false
      tags: [always]
"""


def test_a_failed_preflight_stops_the_preview_it_ran_beside(tmp_path: Path, sshd_host: SshdHost) -> None:
    """The provision previews while its preflight runs: a secret the motd role needs is missing, so the
    preflight fails, and the preview (whose first task would mark the controller after 20 s) is stopped,
    not waited for. The apply is journaled as refused; nothing reached the host."""
    root, env = adopted_repo(tmp_path, sshd_host)
    mark = tmp_path / "preview-ran-to-its-end"
    playbook = root / "ansible" / "playbooks" / "linux.yml"
    playbook.write_text(playbook.read_text().replace("  roles:\n", SLOW_MARK_TASK.format(mark=mark) + "  roles:\n", 1))
    meta = root / "ansible" / "roles" / "motd" / "meta" / "blumeops.yml"  # blumeops' own role metadata
    meta.write_text("---\nrequired_env: [HOMELAB_MOTD_SIGNING_KEY]\n")
    git = ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "a slow first task; a secret for motd"], check=True)
    deps = run_inv("hosts.deps", env=env, cwd=root)
    assert deps.returncode == 0, deps.stdout + deps.stderr

    result = run_inv("hosts.provision", "--limit=sifaka", "--yes", "--allow-dirty", env=env, cwd=root)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("Preflight failed: missing secrets: HOMELAB_MOTD_SIGNING_KEY (for motd)")
    )
    entry = journal.read(tmp_path / "state" / "journal.jsonl")[0][-1]
    assert (entry["result"], entry["source"]) == ("refused", "snapshot")
    time.sleep(25)  # longer than the task's sleep: a preview left running would have marked by now
    assert not mark.exists()
    assert not sshd_host.sshd.path(tmp_path / "out" / "motd").exists()
