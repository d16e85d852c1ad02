"""Fixtures for the hosts layer: a real sshd on loopback playing host "indri", and test inventories.

The test host is THIS machine reached over real SSH: `/usr/sbin/sshd` with its own config, host
key and authorized key on 127.0.0.1 (see tests/hosts/sshd.py), Ansible connecting as root. There is
no init system here (PID 1 is not systemd), so the roles' service manager resolves to "none": the
configs are written and validated by the services' own validators, no service is started.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, clean_environ, require_tool
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
def sshd_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdHost]:
    require_tool("ssh")
    require_tool("ansible-playbook")
    workdir = tmp_path_factory.mktemp("sshd")
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


def tool_path(name: str) -> str:
    return require_tool(name)


def test_overrides() -> dict[str, Any]:
    """What differs on the test host from a real Debian host: borgmatic comes from this Python's pip."""
    return {
        "borgmatic_pip_executable": tool_path("pip"),
        "borgmatic_binary": tool_path("borgmatic"),
    }


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
    members = {name: {**host.connection_vars(), **test_overrides(), **extra} for name, extra in entries.items()}
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
