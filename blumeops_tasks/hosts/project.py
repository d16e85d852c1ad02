"""The hosts layer's view of the repo: paths from config, ansible command lines, the inventory.

Command lines are built by pure functions (tests pin them with MockContext); every command runs
through `blumeops_tasks.shell.run` from the repo root with ANSIBLE_CONFIG pointing at the repo's
ansible.cfg, so relative paths in it resolve the same for the operator and for the tasks.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from invoke.context import Context
from invoke.runners import Result

from blumeops_tasks import shell
from blumeops_tasks.config import repo_path, repo_root, setting, state_dir
from blumeops_tasks.hosts.inventory import Inventory, ProjectError

RESULTS_ENV = "BLUMEOPS_ANSIBLE_RESULTS"


@dataclass(frozen=True)
class Project:
    root: Path
    inventory: Path
    playbooks: Path
    roles: Path
    config: Path
    ansible_playbook: str
    ansible_inventory: str
    default_playbook: str
    ssh_timeout: float
    # Where file-keyed results (inventory, passing syntax checks) are cached; None: no cache.
    cache_dir: Path | None = None

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def project(c: Context, inventory: str | None = None) -> Project:
    return Project(
        root=repo_root(c),
        inventory=repo_path(c, setting(c, "hosts.inventory", inventory)),
        playbooks=repo_path(c, setting(c, "hosts.playbooks")),
        roles=repo_path(c, setting(c, "hosts.roles")),
        config=repo_path(c, setting(c, "hosts.ansible_config")),
        ansible_playbook=str(setting(c, "hosts.ansible_playbook")),
        ansible_inventory=str(setting(c, "hosts.ansible_inventory")),
        default_playbook=str(setting(c, "hosts.default_playbook")),
        ssh_timeout=float(setting(c, "hosts.ssh_timeout")),
        cache_dir=state_dir(c) / "cache" / "hosts",
    )


def _ansible_cfg(p: Project) -> configparser.RawConfigParser:
    """ansible.cfg as Ansible reads it (no interpolation); empty when it does not parse."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(p.config, encoding="utf-8")
    except configparser.Error:
        return configparser.RawConfigParser()
    return parser


def ansible_control_path(p: Project) -> str:
    """Ansible's ssh ControlPath for this project ("" when ansible.cfg sets one we cannot reproduce)."""
    parser = _ansible_cfg(p)
    section = "ssh_connection"
    if os.environ.get("ANSIBLE_SSH_CONTROL_PATH") or not parser.has_section(section):
        return ""
    if parser.get(section, "control_path", fallback="") != "%(directory)s/%%C":
        return ""
    directory = os.environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR") or parser.get(section, "control_path_dir", fallback="")
    if not directory:
        return ""
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return ""
    return f"{path}/%C"


def ansible_strategy(p: Project) -> str:
    """The strategy ansible-playbook will use: ANSIBLE_STRATEGY, else ansible.cfg, else Ansible's linear."""
    configured = _ansible_cfg(p).get("defaults", "strategy", fallback="linear")
    return os.environ.get("ANSIBLE_STRATEGY") or str(configured)


def ansible_env(p: Project, results: Path | None = None) -> dict[str, str]:
    env = {"ANSIBLE_CONFIG": str(p.config), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if results is not None:
        env[RESULTS_ENV] = str(results)
    return env


def playbook_command(
    p: Project,
    playbook: Path,
    *,
    mode: str,
    tags: str | None = None,
    limit: str | None = None,
) -> str:
    """`ansible-playbook` for a mode: "syntax" (--syntax-check), "check" (--check --diff), "apply" (--diff)."""
    parts = [p.ansible_playbook, "-i", str(p.inventory), p.rel(playbook)]
    if mode == "syntax":
        parts.append("--syntax-check")
    elif mode == "check":
        parts += ["--check", "--diff"]
    elif mode == "apply":
        parts.append("--diff")
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if tags:
        parts += ["--tags", tags]
    if limit:
        parts += ["--limit", limit]
    return f"cd {shlex.quote(str(p.root))} && {shlex.join(parts)}"


def inventory_command(p: Project) -> str:
    return f"cd {shlex.quote(str(p.root))} && {shlex.join([p.ansible_inventory, '-i', str(p.inventory), '--list'])}"


def source_files(p: Project) -> list[Path]:
    """Everything a syntax check or an inventory parse reads."""
    return [p.inventory, p.config, p.playbooks, p.roles, p.root / "callback_plugins"]


def load_inventory(c: Context, p: Project) -> Inventory:
    """Parse the inventory with ansible-inventory; an unparsable source is an error, not a warning.

    The parsed JSON is cached under the state dir, keyed by the inventory's files and settings.
    """
    from blumeops_tasks.hosts import cache

    key = cache.fingerprint([p.inventory, p.config], extra=[inventory_command(p)])
    if p.cache_dir is not None and (cached := cache.get(p.cache_dir, "inventory", key)) is not None:
        return Inventory.from_list_json(cached)
    env = {
        **ansible_env(p),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
    }
    result: Result = shell.run(c, inventory_command(p), env=env, hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(
            f"The inventory {p.rel(p.inventory)} does not parse: {last_line(result.stderr or result.stdout)}; "
            f"fix it or point blumeops.hosts.inventory at a valid one."
        )
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise ProjectError(f"ansible-inventory printed no JSON for {p.rel(p.inventory)}.") from None
    if p.cache_dir is not None:
        cache.put(p.cache_dir, "inventory", key, data)
    return Inventory.from_list_json(data)


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip() and "WARNING" not in line]
    if not lines:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def error_line(text: str) -> str:
    """The first ERROR line ansible printed, else the last line."""
    for line in (text or "").splitlines():
        if "ERROR" in line:
            return line.strip().removeprefix("[ERROR]:").strip()
    return last_line(text)
