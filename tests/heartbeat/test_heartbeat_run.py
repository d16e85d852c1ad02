"""`inv heartbeat` for real (a subprocess, as the timer runs it) against a small git repo whose
layers give a known plan: the hosts layer previews a local-connection host with real Ansible
(in line, then drifting after a commit), the tailnet layer points at a directory that does not
exist (a preview error), ArgoCD has no kubeconfig (a preview error). The metrics are read back and
parsed; a webhook on 127.0.0.1 gets exactly one notice, on the transition."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import clean_environ, require_tool, run_inv
from tests.gitops.helpers import GIT_IDENTITY, Repo
from tests.heartbeat.webhook import webhook_receiver

pytestmark = pytest.mark.slow

TASKS_PY = (
    "from pathlib import Path\n\nfrom blumeops_tasks.namespace import build_namespace\n\n"
    "ns = build_namespace(Path(__file__).resolve().parent)\n"
)
SITE = "- name: Box\n  hosts: box\n  gather_facts: false\n  roles:\n    - marker\n"
MARKER_TASKS = (
    '- name: Marker file\n  ansible.builtin.copy:\n    content: "{{ marker_text }}\\n"\n'
    '    dest: "{{ marker_path }}"\n    mode: "0644"\n'
)


class HeartbeatRepo:
    """A Repo (real git, bare remote) laid out so each layer's preview has a known outcome."""

    def __init__(self, base: Path, home: Path) -> None:
        self.repo = Repo(base)
        self.marker = base / "box" / "marker.txt"
        self.marker.parent.mkdir()
        self.marker.write_text("one\n")  # the "host" is already in line with marker_text: one
        inventory = {
            "all": {"hosts": {"box": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
        }
        self.repo.write("inventory/hosts.yml", json.dumps(inventory))
        self.repo.write("inventory/host_vars/box.yml", f"marker_path: {self.marker}\n")
        for stale in ("playbooks/indri.yml", "playbooks/sifaka.yml", "inventory/host_vars/indri.yml"):
            (self.repo.root / stale).unlink()
        self.repo.write("playbooks/site.yml", SITE)
        self.repo.write("roles/marker/tasks/main.yml", MARKER_TASKS)
        self.repo.write("roles/marker/defaults/main.yml", "marker_text: one\n")
        self.repo.write("tasks.py", TASKS_PY)
        self.repo.write("invoke.yaml", "blumeops:\n  tailnet:\n    dir: no-such-pulumi-dir\n")
        self.repo.write(".gitignore", ".blumeops/\n")
        self.repo.commit("a local box for the hosts layer")
        self.env = clean_environ(
            home, {"ANSIBLE_HOME": str(base / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp")}
        )

    def heartbeat(self, *args: str) -> tuple[int, str, str]:
        result = run_inv("heartbeat", *args, env=self.env, cwd=self.repo.root, timeout=300)
        return result.returncode, result.stdout, result.stderr


def metrics(path: Path) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("layer", ""))] = sample.value
    return found


@pytest.fixture
def box(tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> HeartbeatRepo:
    require_tool("git")
    require_tool("ansible-playbook")
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    return HeartbeatRepo(tmp_path, isolated_env)


def test_metrics_follow_the_plan_and_the_webhook_fires_once_on_the_transition(
    box: HeartbeatRepo, tmp_path: Path
) -> None:
    textfile = tmp_path / "textfile" / "blumeops.prom"
    textfile.parent.mkdir()
    with webhook_receiver() as hook:
        # 1. hosts in line, the other layers failing: exit 1 (errors win, as in `inv plan`), no notice.
        code, out, err = box.heartbeat(f"--textfile={textfile}", f"--webhook={hook.url}")
        assert code == 1, out + err
        first = metrics(textfile)
        assert first[("blumeops_drift", "hosts")] == 0
        assert first[("blumeops_plan_exit_code", "hosts")] == 0
        assert first[("blumeops_plan_exit_code", "tailnet")] == 1
        assert math.isnan(first[("blumeops_drift", "tailnet")])
        assert first[("blumeops_plan_exit_code", "argocd")] == 1
        # Never applied: every commit touching the hosts layer's files is pending (initial + box).
        assert first[("blumeops_pending_commits", "hosts")] == 2
        assert "tailnet preview failed" in err
        assert hook.posts == []

        # 2. a commit changes what the host should hold: hosts drifts, one notice.
        box.repo.change("roles/marker/defaults/main.yml", "marker says two", "marker_text: two\n")
        code, out, err = box.heartbeat(f"--textfile={textfile}", f"--webhook={hook.url}")
        assert code == 1, out + err
        second = metrics(textfile)
        assert second[("blumeops_drift", "hosts")] == 1
        assert second[("blumeops_plan_exit_code", "hosts")] == 2
        assert second[("blumeops_plan_changes", "hosts")] == 1
        assert second[("blumeops_pending_commits", "hosts")] == 3
        assert (
            second[("blumeops_last_plan_timestamp_seconds", "")] >= first[("blumeops_last_plan_timestamp_seconds", "")]
        )
        assert len(hook.posts) == 1, hook.posts
        assert "hosts (1 change on box)" in hook.posts[0][1]
        assert box.marker.read_text() == "one\n"  # the heartbeat only previews

        # 3. still drifting: no second notice; only the hosts layer: exit 2, as `inv plan --layer=hosts`.
        code, out, err = box.heartbeat(f"--textfile={textfile}", f"--webhook={hook.url}", "--layer=hosts")
        assert code == 2, out + err
        assert metrics(textfile)[("blumeops_drift", "hosts")] == 1
        assert len(hook.posts) == 1, hook.posts
    assert sorted(p.name for p in textfile.parent.iterdir()) == ["blumeops.prom"]  # no temporary left
    assert hook.url not in out + err


def test_without_textfile_the_metrics_are_printed(box: HeartbeatRepo) -> None:
    code, out, err = box.heartbeat("--layer=hosts")
    assert code == 0, out + err
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert families["blumeops_drift"].samples[0].value == 0
    assert families["blumeops_drift"].samples[0].labels == {"layer": "hosts"}


def test_a_failing_webhook_is_an_error_and_the_notice_is_retried(box: HeartbeatRepo, tmp_path: Path) -> None:
    box.repo.change("roles/marker/defaults/main.yml", "marker says two", "marker_text: two\n")
    textfile = tmp_path / "blumeops.prom"
    with webhook_receiver() as hook:
        hook.status = 503
        box.env["BLUMEOPS_HEARTBEAT_WEBHOOK"] = hook.url  # the way the role hands it over
        code, out, err = box.heartbeat(f"--textfile={textfile}", "--layer=hosts")
        assert code == 1, out + err
        assert "HTTP 503" in err
        assert hook.url not in out + err
        assert "blumeops-drift-topic" not in out + err
        assert metrics(textfile)[("blumeops_drift", "hosts")] == 1  # the metrics are written all the same
        hook.status = 200
        code, out, err = box.heartbeat(f"--textfile={textfile}", "--layer=hosts")
        assert code == 2, out + err
        assert len(hook.posts) == 2  # the failed notice, then its retry
        code, out, err = box.heartbeat(f"--textfile={textfile}", "--layer=hosts")
        assert len(hook.posts) == 2


def test_a_missing_textfile_directory_is_one_sentence(box: HeartbeatRepo, tmp_path: Path) -> None:
    code, _out, err = box.heartbeat(f"--textfile={tmp_path / 'nowhere' / 'blumeops.prom'}", "--layer=hosts")
    assert code == 1
    assert "does not exist" in err
    assert "Traceback" not in err
