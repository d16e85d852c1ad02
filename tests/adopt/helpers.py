"""Shared steps of the adoption tests: a separate repo made of native files, and its hosts made unreachable."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.conftest import REPO, require_tool
from tests.hosts.sshd import unused_port

FIXTURE = REPO / "tests" / "fixtures" / "homelab"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Operator",
    "GIT_AUTHOR_EMAIL": "operator@example.com",
    "GIT_COMMITTER_NAME": "Operator",
    "GIT_COMMITTER_EMAIL": "operator@example.com",
}


def adopted_repo(dest: Path, env: Mapping[str, str]) -> Path:
    """A copy of tests/fixtures/homelab as its own git repository (one commit), outside this checkout."""
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("__pycache__", ".blumeops", ".ansible"))
    git = require_tool("git")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "homelab"]):
        subprocess.run([git, *args], cwd=dest, env={**env, **GIT_ENV}, check=True, capture_output=True)
    return dest


def hosts_setting(repo: Path, key: str) -> Path:
    """A hosts path setting as the repo's invoke.yaml configures it."""
    config = yaml.safe_load((repo / "invoke.yaml").read_text()) or {}
    return repo / str(config["blumeops"]["hosts"][key])


def inventory_hosts(repo: Path, env: Mapping[str, str]) -> list[str]:
    """The hosts Ansible reads from the repo's inventory (asked of ansible-inventory, never re-parsed)."""
    result = subprocess.run(
        [require_tool("ansible-inventory"), "-i", str(hosts_setting(repo, "inventory")), "--list"],
        cwd=repo,
        env={**env, "ANSIBLE_CONFIG": str(hosts_setting(repo, "ansible_config"))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"ansible-inventory cannot read the fixture's inventory: {result.stderr}"
    return sorted(json.loads(result.stdout)["_meta"]["hostvars"])


def make_hosts_unreachable(repo: Path, env: Mapping[str, str]) -> list[str]:
    """Point every inventory host at a loopback port nothing listens on (host_vars win over the
    inventory's own connection settings), so a preview reaches Ansible's connection step and no
    traffic leaves this machine. Returns the hosts."""
    hosts = inventory_hosts(repo, env)
    assert hosts, f"ansible-inventory finds no host in {hosts_setting(repo, 'inventory')}"
    inventory = hosts_setting(repo, "inventory")
    host_vars = (inventory if inventory.is_dir() else inventory.parent) / "host_vars"
    host_vars.mkdir(exist_ok=True)
    overlay = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": unused_port()}
    for host in hosts:
        if (host_vars / host).is_dir():
            (host_vars / host / "zz-unreachable.yml").write_text(yaml.safe_dump(overlay))
            continue
        existing = next((p for p in (host_vars / f"{host}.yml", host_vars / f"{host}.yaml") if p.exists()), None)
        target = existing or host_vars / f"{host}.yml"
        data = (yaml.safe_load(target.read_text()) or {}) if existing else {}
        target.write_text(yaml.safe_dump({**data, **overlay}, sort_keys=False))
    return hosts
