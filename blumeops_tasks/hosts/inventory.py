"""The Ansible project as plain data: playbook files, role metadata, the inventory Ansible reports.

The inventory is the JSON of `ansible-inventory --list` (run and cached by project.load_inventory);
which hosts a pattern or a run selects is never worked out here: hosts/ask.py asks Ansible.
Everything here is pure.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blumeops_tasks import yaml_read


class ProjectError(ValueError):
    """A problem with the repo's Ansible files, worded as one actionable sentence."""


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml_read.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProjectError(f"Cannot read {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}.") from None


# -- playbooks -------------------------------------------------------------------------------------


def playbooks(playbooks_dir: Path) -> list[Path]:
    return sorted(p for p in playbooks_dir.glob("*.y*ml") if p.suffix in {".yml", ".yaml"} and p.is_file())


def playbook_for(playbooks_dir: Path, host: str | None, default: str) -> Path:
    """`playbooks/<host>.yml`, or the default playbook (all hosts) when no host is given."""
    name = host or default
    for path in (playbooks_dir / f"{name}.yml", playbooks_dir / f"{name}.yaml"):
        if path.is_file():
            return path
    path = playbooks_dir / f"{name}.yml"
    known = ", ".join(p.stem for p in playbooks(playbooks_dir)) or "none"
    raise ProjectError(
        f"There is no playbook for {name!r} ({path} is missing); known playbooks: {known}; "
        f"add {path.name} or pick one of those with --host."
    )


def imported_playbooks(playbooks_dir: Path) -> set[Path]:
    """Playbooks another playbook imports (`import_playbook`): their syntax is checked with the importer's."""
    import yaml

    imported: set[Path] = set()
    for book in playbooks(playbooks_dir):
        try:
            document = yaml_read.safe_load(book.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # its own syntax check reports it
        for entry in document if isinstance(document, list) else []:
            target = (
                entry.get("ansible.builtin.import_playbook") or entry.get("import_playbook")
                if isinstance(entry, dict)
                else None
            )
            if isinstance(target, str) and "{{" not in target:
                imported.add((book.parent / target).resolve())
    return imported


def root_playbooks(playbooks_dir: Path) -> list[Path]:
    """The playbooks no other playbook imports: one syntax check each covers the whole graph."""
    imported = imported_playbooks(playbooks_dir)
    return [book for book in playbooks(playbooks_dir) if book.resolve() not in imported]


# -- role metadata ---------------------------------------------------------------------------------


def role_meta(roles_dir: Path, role: str) -> dict[str, Any]:
    """A role's meta/blumeops.yml (required_env, status probes); empty when it has none."""
    path = roles_dir / role / "meta" / "blumeops.yml"
    if not path.is_file():
        return {}
    data = _yaml(path) or {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must be a mapping.")
    return data


def required_env(roles_dir: Path, roles: list[str]) -> dict[str, list[str]]:
    """Environment variable name -> the roles that need it."""
    needed: dict[str, list[str]] = {}
    for role in roles:
        for name in role_meta(roles_dir, role).get("required_env") or []:
            needed.setdefault(str(name), []).append(role)
    return needed


def role_defaults(roles_dir: Path, role: str) -> dict[str, Any]:
    path = roles_dir / role / "defaults" / "main.yml"
    data = _yaml(path) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


# -- inventory -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshTarget:
    """How Ansible reaches a host, from its inventory variables."""

    name: str
    address: str
    port: int = 22
    user: str = ""
    key_file: str = ""
    common_args: str = ""
    python: str = ""

    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.address}:{self.port}"

    def known_hosts_file(self) -> str:
        """UserKnownHostsFile from the ssh arguments, if the inventory sets one."""
        match = re.search(r"UserKnownHostsFile[= ]+(\S+)", self.common_args)
        return match.group(1).strip("'\"") if match else ""


@dataclass
class Inventory:
    """The parsed output of `ansible-inventory --list`."""

    hostvars: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_list_json(cls, data: dict[str, Any]) -> Inventory:
        meta = data.get("_meta") or {}
        hostvars = {str(h): dict(v or {}) for h, v in (meta.get("hostvars") or {}).items()}
        groups = {str(k): dict(v or {}) for k, v in data.items() if k != "_meta" and isinstance(v, dict)}
        for group in groups.values():
            for host in group.get("hosts") or []:
                hostvars.setdefault(str(host), {})
        return cls(hostvars, groups)

    @property
    def hosts(self) -> list[str]:
        return list(self.hostvars)

    def ssh_target(self, host: str) -> SshTarget:
        if host not in self.hostvars:
            known = ", ".join(self.hosts) or "none"
            raise ProjectError(f"Host {host!r} is not in the inventory (known hosts: {known}).")
        v = self.hostvars[host]
        port = v.get("ansible_port") or v.get("ansible_ssh_port") or 22
        args = " ".join(str(v.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args")).strip()
        return SshTarget(
            name=host,
            address=str(v.get("ansible_host") or v.get("ansible_ssh_host") or host),
            port=int(port),
            user=str(v.get("ansible_user") or v.get("ansible_ssh_user") or ""),
            key_file=str(v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file") or ""),
            common_args=args,
            python=str(v.get("ansible_python_interpreter") or ""),
        )


def ssh_command(target: SshTarget, remote: str, connect_timeout: float, ssh_args: str = "") -> str:
    """An ssh command line reaching the host as Ansible's ssh connection would (no prompts).

    `ssh_args` are Ansible's own (ansible.cfg); with a ControlPath among them this connection becomes
    the ControlPersist master the ansible run right after reuses, so the check costs the run nothing.
    """
    parts = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(int(connect_timeout), 1)}"]
    parts += shlex.split(ssh_args)
    parts += ["-p", str(target.port)]
    if target.key_file:
        parts += ["-i", target.key_file]
    if target.user:
        parts += ["-l", target.user]
    parts += shlex.split(target.common_args)
    parts += [target.address, remote]
    return shlex.join(parts)
