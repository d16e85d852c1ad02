"""roles/drift_heartbeat provisioned over real SSH on a disposable host (tests/hosts/sshd.py), through the
shipped indri playbook with the heartbeat switched on in host_vars, as an operator would. sshd is PID 1
there (Ansible's service_mgr is not systemd): the role writes the units and says it cannot enable them.
Then the unit's own command line is run on the host and its metrics read back."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, require_tool, run_inv
from tests.gitops.helpers import Repo
from tests.hosts.conftest import HostsInventory, SshdHost, disposable_host, make_inventory

pytestmark = pytest.mark.slow

MANAGED = "Managed by Ansible from the blumeops repo"
UNIT_DIR = "/etc/systemd/system"
TEXTFILE = "/var/lib/prometheus/node-exporter/blumeops.prom"  # Debian's default textfile directory
CLONE = "/opt/blumeops"
ORIGIN = "/srv/blumeops.git"  # the clone's origin, on the host itself
WEBHOOK = "http://127.0.0.1:9/ntfy-topic-s3cr3t-8c1d"
TASKS_PY = (
    "from pathlib import Path\nfrom blumeops_tasks.namespace import build_namespace\n\n"
    "ns = build_namespace(Path(__file__).resolve().parent)\n"
)


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


PROVISION = ("hosts.provision", "--host=indri", "--tags=drift_heartbeat", "--yes", "--allow-dirty")


@dataclass
class HeartbeatHost:
    host: SshdHost
    inventory: HostsInventory
    repo: Repo
    first: subprocess.CompletedProcess[str]
    disabled_preview: subprocess.CompletedProcess[str]

    def unit(self, suffix: str) -> str:
        return self.host.sshd.path(f"{UNIT_DIR}/blumeops-heartbeat.{suffix}").read_text()


@pytest.fixture(scope="module")
def heartbeat_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeartbeatHost]:
    """A fresh disposable host, prepared as the operator would (a clone, an inv), then provisioned once."""
    tmp = tmp_path_factory.mktemp("hb")  # short: ssh's ControlPath must fit in a socket address
    home = tmp / "home"
    home.mkdir()
    repo = Repo(tmp / "repo")
    repo.write("tasks.py", TASKS_PY)
    repo.commit("tasks.py")
    repo.push()
    with disposable_host(tmp / "host") as host:
        # The host sees this machine's /tmp through its overlay (the clone's origin) and /root (this
        # interpreter's inv).
        cloned = host.sshd.run(
            "sh", "-c", f"git clone -q --bare {repo.remote} {ORIGIN} && git clone -q {ORIGIN} {CLONE}"
        )
        assert cloned.returncode == 0, cloned.stderr
        inv = make_inventory(tmp, host, home)
        # Opt-in: without drift_heartbeat_enabled the shipped playbook has nothing of it to do.
        disabled = run_inv(
            "hosts.preview", "--host=indri", "--tags=drift_heartbeat", "--json", env=inv.env, timeout=900
        )
        inv.set_host_var("drift_heartbeat_enabled", True)
        inv.set_host_var("drift_heartbeat_inv", str(Path(sys.executable).parent / "inv"))
        # This worktree's blumeops_tasks, not the installed one; no cluster for the argocd layer.
        inv.set_host_var("drift_heartbeat_environment", {"PYTHONPATH": str(REPO), "KUBECONFIG": "/nonexistent"})
        inv.env["BLUMEOPS_HEARTBEAT_WEBHOOK"] = WEBHOOK
        first = run_inv(*PROVISION, env=inv.env, timeout=900)
        yield HeartbeatHost(host, inv, repo, first, disabled)


def test_the_role_is_opt_in(heartbeat_host: HeartbeatHost) -> None:
    preview = heartbeat_host.disabled_preview
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-2000:]
    document = json.loads(preview.stdout)
    assert [t["target"] for layer in document["layers"] for t in layer["targets"]] == ["indri"]
    assert [c for layer in document["layers"] for t in layer["targets"] for c in t["changes"]] == []


def test_role_writes_units_and_says_it_cannot_enable_them(heartbeat_host: HeartbeatHost) -> None:
    first = heartbeat_host.first
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert "TASK [drift_heartbeat : " in first.stdout
    # No service manager: the units are there, and the run says they are not enabled.
    assert "systemctl enable --now blumeops-heartbeat.timer" in first.stdout
    assert WEBHOOK not in first.stdout + first.stderr
    assert "s3cr3t" not in first.stdout + first.stderr
    service, timer = heartbeat_host.unit("service"), heartbeat_host.unit("timer")
    assert MANAGED in service
    assert MANAGED in timer
    unit = unit_settings(service)
    assert unit["WorkingDirectory"] == [CLONE]
    assert unit["Type"] == ["oneshot"]
    assert unit["SuccessExitStatus"] == ["2"]  # drift is not a failed unit
    assert shlex.split(unit["ExecStart"][0])[1:] == ["heartbeat", "--textfile", TEXTFILE]
    assert unit["EnvironmentFile"] == ["-/etc/default/blumeops-heartbeat"]
    assert unit["ExecStartPre"] == [f"-/usr/bin/env git -C {CLONE} pull --ff-only --quiet"]
    assert WEBHOOK not in service
    timer_settings = unit_settings(timer)
    assert timer_settings["OnUnitActiveSec"] == ["3600s"]
    assert timer_settings["WantedBy"] == ["timers.target"]
    # systemd's own validator accepts both units, on the host (where the clone and the inv exist).
    require_tool("systemd-analyze")
    verified = heartbeat_host.host.sshd.run(
        "systemd-analyze", "verify", f"{UNIT_DIR}/blumeops-heartbeat.service", f"{UNIT_DIR}/blumeops-heartbeat.timer"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stderr.strip() == "", verified.stderr
    env_file = heartbeat_host.host.sshd.path("/etc/default/blumeops-heartbeat")
    assert f"BLUMEOPS_HEARTBEAT_WEBHOOK={WEBHOOK}" in env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # This machine got none of it.
    assert not Path(f"{UNIT_DIR}/blumeops-heartbeat.service").exists()
    assert not Path("/etc/default/blumeops-heartbeat").exists()


def test_second_provision_changes_nothing(heartbeat_host: HeartbeatHost) -> None:
    assert heartbeat_host.first.returncode == 0, heartbeat_host.first.stdout[-3000:]
    again = run_inv(*PROVISION, env=heartbeat_host.inventory.env, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "Nothing to change" in again.stdout, again.stdout[-3000:]


def test_the_units_command_writes_the_metrics_on_the_host(heartbeat_host: HeartbeatHost) -> None:
    """What the timer would start, started by hand on the host: the unit's environment, directory and
    command line. The clone's layers cannot be previewed there (no pulumi, no cluster, its inventory's
    hosts do not resolve): exit 1, and the metrics say so per layer."""
    assert heartbeat_host.first.returncode == 0, heartbeat_host.first.stdout[-3000:]
    unit = unit_settings(heartbeat_host.unit("service"))
    sshd = heartbeat_host.host.sshd
    environment = [shlex.split(value)[0] for value in unit["Environment"]]
    pull = unit["ExecStartPre"][0].removeprefix("-")
    command = f"cd {shlex.quote(unit['WorkingDirectory'][0])} && {pull} && exec {unit['ExecStart'][0]}"
    # A commit merged since the clone was made: the pull before the heartbeat brings it in.
    merged = sshd.run(
        "sh",
        "-c",
        f"git clone -q {ORIGIN} /root/work && cd /root/work && echo '# merged' >> roles/caddy/tasks/main.yml && "
        "git -c user.name=Op -c user.email=op@example.invalid commit -qam 'caddy: merged' && git push -q",
    )
    assert merged.returncode == 0, merged.stderr
    ran = sshd.run("env", *environment, "sh", "-c", command, timeout=600)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    written = sshd.path(TEXTFILE)
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    found = {
        (s.name, s.labels.get("layer", "")): s.value
        for family in text_string_to_metric_families(written.read_text())
        for s in family.samples
    }
    for layer in ("tailnet", "hosts", "argocd"):
        assert found[("blumeops_plan_exit_code", layer)] == 1, found
    assert ("blumeops_last_plan_timestamp_seconds", "") in found
    # Never applied: every commit touching the hosts files is pending: the initial one and the one the pull
    # brought (tasks.py is no layer's).
    assert found[("blumeops_pending_commits", "hosts")] == 2
    assert not Path(TEXTFILE).exists()  # on the host only
