"""Reading the Ansible project as plain data: playbooks, their roles, the inventory, host patterns.

The inventory comes from `ansible-inventory --list` (run by the caller through the invoke Context);
everything here is pure: it parses that JSON, resolves host patterns the way Ansible does for the
common forms, and reads playbooks and role metadata with PyYAML.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ProjectError(ValueError):
    """A problem with the repo's Ansible files, worded as one actionable sentence."""


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProjectError(f"Cannot read {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}.") from None


# -- playbooks -------------------------------------------------------------------------------------


def playbooks(playbooks_dir: Path) -> list[Path]:
    return sorted(p for p in playbooks_dir.glob("*.yml") if p.is_file())


def playbook_for(playbooks_dir: Path, host: str | None, default: str) -> Path:
    """`playbooks/<host>.yml`, or the default playbook (all hosts) when no host is given."""
    name = host or default
    path = playbooks_dir / f"{name}.yml"
    if path.is_file():
        return path
    known = ", ".join(p.stem for p in playbooks(playbooks_dir)) or "none"
    raise ProjectError(
        f"There is no playbook for {name!r} ({path} is missing); known playbooks: {known}; "
        f"add {path.name} or pick one of those with --host."
    )


def _plays(playbook: Path, seen: set[Path] | None = None) -> list[dict[str, Any]]:
    """Plays of a playbook with import_playbook followed (relative to the importing file)."""
    seen = set() if seen is None else seen
    resolved = playbook.resolve()
    if resolved in seen:
        return []
    seen.add(resolved)
    document = _yaml(playbook) or []
    if not isinstance(document, list):
        raise ProjectError(f"{playbook} must be a list of plays.")
    plays: list[dict[str, Any]] = []
    for entry in document:
        if not isinstance(entry, dict):
            continue
        target = entry.get("ansible.builtin.import_playbook") or entry.get("import_playbook")
        if target:
            plays.extend(_plays(playbook.parent / str(target), seen))
        else:
            plays.append(entry)
    return plays


def play_patterns(playbook: Path) -> list[str]:
    """The `hosts:` pattern of every play, in order."""
    patterns = []
    for play in _plays(playbook):
        hosts = play.get("hosts", "")
        patterns.append(",".join(hosts) if isinstance(hosts, list) else str(hosts))
    return patterns


def _role_entry(entry: Any) -> tuple[str, list[str]]:
    if isinstance(entry, str):
        return entry, []
    if isinstance(entry, dict):
        name = str(entry.get("role") or entry.get("name") or "")
        tags = entry.get("tags") or []
        return name, [tags] if isinstance(tags, str) else [str(t) for t in tags]
    return "", []


def play_roles(playbook: Path, tags: str | None = None) -> list[str]:
    """Roles the playbook applies; with --tags, only roles whose own name or tags were selected."""
    wanted = {t.strip() for t in (tags or "").split(",") if t.strip()}
    roles: list[str] = []
    for play in _plays(playbook):
        for entry in play.get("roles") or []:
            name, role_tags = _role_entry(entry)
            if not name or name in roles:
                continue
            if wanted and "all" not in wanted and not (wanted & {name, *role_tags}):
                continue
            roles.append(name)
    return roles


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

    def group_hosts(self, group: str, seen: set[str] | None = None) -> list[str]:
        seen = set() if seen is None else seen
        if group in seen or group not in self.groups:
            return []
        seen.add(group)
        entry = self.groups[group]
        found = [str(h) for h in entry.get("hosts") or []]
        for child in entry.get("children") or []:
            found.extend(h for h in self.group_hosts(str(child), seen) if h not in found)
        return found

    def _atom(self, atom: str) -> list[str]:
        if atom in {"all", "*"}:
            return self.hosts
        if atom in self.hostvars:
            return [atom]
        if atom in self.groups:
            return self.group_hosts(atom)
        if any(ch in atom for ch in "*?["):
            names = [h for h in self.hosts if fnmatch.fnmatchcase(h, atom)]
            for group in self.groups:
                if fnmatch.fnmatchcase(group, atom):
                    names.extend(h for h in self.group_hosts(group) if h not in names)
            return names
        return []

    def match(self, pattern: str) -> list[str]:
        """Hosts matching an Ansible pattern: names, groups, globs, `,`/`:` unions, `&` and `!`."""
        parts = [p.strip() for p in re.split(r"[,:]", pattern or "") if p.strip()]
        selected: list[str] = []
        for part in parts:
            if part.startswith(("!", "&")):
                continue
            selected.extend(h for h in self._atom(part) if h not in selected)
        for part in parts:
            if part.startswith("&"):
                keep = set(self._atom(part[1:]))
                selected = [h for h in selected if h in keep]
        for part in parts:
            if part.startswith("!"):
                drop = set(self._atom(part[1:]))
                selected = [h for h in selected if h not in drop]
        return [h for h in self.hosts if h in selected]  # inventory order

    def targets(self, patterns: list[str], limit: str | None = None) -> list[str]:
        """Hosts a playbook would run on: union of its plays' patterns, narrowed by --limit."""
        chosen: set[str] = set()
        for pattern in patterns:
            chosen.update(self.match(pattern))
        if limit:
            chosen &= set(self.match(limit))
        return [h for h in self.hosts if h in chosen]

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


def ssh_command(target: SshTarget, remote: str, connect_timeout: float, control_path: str = "") -> str:
    """An ssh command line reaching the host exactly as Ansible's ssh connection would (no prompts).

    With control_path (Ansible's own), the connection becomes the ControlPersist master that the
    ansible run right after reuses, so the reachability check costs the run nothing.
    """
    parts = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(int(connect_timeout), 1)}"]
    if control_path:
        parts += ["-o", "ControlMaster=auto", "-o", "ControlPersist=120s", "-o", f"ControlPath={control_path}"]
    parts += ["-p", str(target.port)]
    if target.key_file:
        parts += ["-i", target.key_file]
    if target.user:
        parts += ["-l", target.user]
    parts += shlex.split(target.common_args)
    parts += [target.address, remote]
    return shlex.join(parts)
