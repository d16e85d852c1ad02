"""Fixtures for the hosts layer: a disposable host on loopback playing "indri", and test inventories.

The test host is a private sshd in its own mount and PID namespaces whose system directories are
overlays of this machine's (tests/hosts/sshd.py): Ansible connects over real SSH as root and
everything it does lands in the overlay, discarded at the end; this machine is never provisioned
(tests/hosts/test_runner_untouched.py proves it). On that host sshd is PID 1, so Ansible's
service_mgr fact is not systemd and the roles' service manager resolves to their documented
"none": the configs are written and validated by the services' own validators, nothing is started.
The inventories give only how the host is reached (and BORG_PASSPHRASE in the environment):
every role setting is the repo's own host_vars or the roles' defaults.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, clean_environ, require_tool, run_inv
from tests.hosts import runner
from tests.hosts.sshd import PrivateSshd, start_sshd

TEST_PASSPHRASE = "borg-test-passphrase-0451"


@dataclass
class SshdHost:
    sshd: PrivateSshd
    known_hosts: Path
    ansible_home: Path
    control_dir: Path

    def connection_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.sshd.port,
            "ansible_user": self.sshd.user,
            "ansible_ssh_private_key_file": str(self.sshd.key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes",
        }


def close_masters(control_dir: Path) -> None:
    """End the ControlPersist masters Ansible left in this control directory."""
    for socket in control_dir.glob("*"):
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "x"], capture_output=True, check=False)


@pytest.fixture(scope="session")
def runner_before() -> dict[str, object]:
    """This machine as it was before any test host started (see tests/hosts/runner.py)."""
    return runner.snapshot()


@contextmanager
def disposable_host(workdir: Path) -> Iterator[SshdHost]:
    """A fresh disposable host (its own sshd and overlays), stopped and discarded on exit."""
    require_tool("ssh")
    require_tool("ansible-playbook")
    sshd = start_sshd(workdir / "sshd")
    host_key = (sshd.workdir / "host_ed25519.pub").read_text().split()
    known = workdir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {host_key[0]} {host_key[1]}\n")
    control_dir = workdir / "cp"
    control_dir.mkdir()
    host = SshdHost(sshd, known, workdir / "ansible-home", control_dir)
    try:
        yield host
    finally:
        close_masters(control_dir)
        sshd.stop()


@pytest.fixture(scope="session")
def sshd_host(tmp_path_factory: pytest.TempPathFactory, runner_before: dict[str, object]) -> Iterator[SshdHost]:
    """The session's shared test host (connections, status, failures; never provisioned from scratch)."""
    with disposable_host(tmp_path_factory.mktemp("sshd")) as host:
        yield host


@pytest.fixture(scope="session")
def fresh_host(tmp_path_factory: pytest.TempPathFactory, runner_before: dict[str, object]) -> Iterator[SshdHost]:
    """A host of its own for the provisioning tests: its first provision meets a stock machine."""
    with disposable_host(tmp_path_factory.mktemp("fresh")) as host:
        yield host


@dataclass
class HostsInventory:
    path: Path
    env: dict[str, str]

    @property
    def host_vars(self) -> Path:
        return self.path / "host_vars" / "indri.yml"

    def set_host_var(self, name: str, value: Any) -> None:
        """Change one variable of indri in the copied host_vars (what an operator would edit)."""
        data = yaml.safe_load(self.host_vars.read_text()) or {}
        data[name] = value
        self.host_vars.write_text(yaml.safe_dump(data, sort_keys=False))


def make_inventory(
    root: Path,
    host: SshdHost,
    home: Path,
    hosts: dict[str, dict[str, Any]] | None = None,
    group: str = "linux",
) -> HostsInventory:
    """A tmp inventory: the repo's group_vars and indri's host_vars, hosts pointing at the test sshd."""
    inv = root / "inventory"
    shutil.copytree(REPO / "inventory" / "group_vars", inv / "group_vars")
    (inv / "host_vars").mkdir(parents=True)
    shutil.copy(REPO / "inventory" / "host_vars" / "indri.yml", inv / "host_vars" / "indri.yml")
    entries = hosts if hosts is not None else {"indri": {}}
    members = {name: {**host.connection_vars(), **extra} for name, extra in entries.items()}
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": members}}}}, sort_keys=False))
    state = root / "state"
    env = clean_environ(
        home,
        {
            "INVOKE_BLUMEOPS_HOSTS_INVENTORY": str(inv),
            "INVOKE_BLUMEOPS_STATE_DIR": str(state),
            "ANSIBLE_HOME": str(host.ansible_home),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(host.control_dir),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(root / "facts"),
            "BORG_PASSPHRASE": TEST_PASSPHRASE,
        },
    )
    return HostsInventory(inv, env)


@pytest.fixture
def inventory(tmp_path: Path, sshd_host: SshdHost, isolated_env: Path) -> HostsInventory:
    return make_inventory(tmp_path, sshd_host, isolated_env)


@dataclass
class Provisioned:
    """The fresh host after its first provision with the shipped playbook and the roles' defaults."""

    host: SshdHost
    inventory: HostsInventory
    first: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def provisioned(fresh_host: SshdHost, tmp_path_factory: pytest.TempPathFactory) -> Provisioned:
    """Provision the fresh host once, as an operator would: `inv hosts.provision --host=indri --yes`."""
    root = tmp_path_factory.mktemp("provisioned")
    home = root / "home"
    home.mkdir()
    inv = make_inventory(root, fresh_host, home)
    result = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env, timeout=900)
    return Provisioned(fresh_host, inv, result)
