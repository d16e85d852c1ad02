"""The hosts layer's view of the repo: paths from config, ansible command lines, the inventory.

Command lines are built by pure functions (tests pin them with MockContext); every command runs
through `blumeops_tasks.shell.run` from the repo root with ANSIBLE_CONFIG pointing at the repo's
ansible.cfg, so relative paths in it resolve the same for the operator and for the tasks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.runners import Result

from blumeops_tasks import shell
from blumeops_tasks.config import repo_root, setting, source_path, source_root, state_dir
from blumeops_tasks.hosts.inventory import Inventory, ProjectError

if TYPE_CHECKING:
    from blumeops_tasks.hosts.ask import Settings

RESULTS_ENV = "BLUMEOPS_ANSIBLE_RESULTS"
# The results callback shipped in the package (ansible_plugins/callback/blumeops_results.py).
CALLBACK = "blumeops_results"


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
    # Collections and roles the playbooks need (ansible-galaxy's requirements.yml).
    requirements: Path = Path("requirements.yml")
    ansible_galaxy: str = "ansible-galaxy"
    ansible_config_tool: str = "ansible-config"
    # Where file-keyed results (inventory, passing syntax checks) are cached; None: no cache.
    cache_dir: Path | None = None

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def _setting(c: Context, key: str, flag: object = None) -> Any:
    """`blumeops.hosts.<key>`; the layer's default when a context was built without the hosts layer's
    defaults (another layer's tasks or tests asking the hosts layer a question)."""
    from blumeops_tasks.hosts.layer import DEFAULTS

    configured = (c.config.get("blumeops") or {}).get("hosts") or {}
    if flag is None and key not in configured and key in DEFAULTS:
        return DEFAULTS[key]
    return setting(c, f"hosts.{key}", flag)


def project(c: Context, inventory: str | None = None) -> Project:
    configured = str(_setting(c, "ansible_config") or "")
    # Empty: the repo has no ansible.cfg of its own, and Ansible searches as it always does.
    config = source_path(c, configured) if configured else source_root(c) / "ansible.cfg"
    requirements = str(_setting(c, "requirements"))
    return Project(
        root=source_root(c),
        inventory=source_path(c, _setting(c, "inventory", inventory)),
        playbooks=source_path(c, _setting(c, "playbooks")),
        roles=source_path(c, _setting(c, "roles")),
        config=config,
        ansible_playbook=str(_setting(c, "ansible_playbook")),
        ansible_inventory=str(_setting(c, "ansible_inventory")),
        requirements=source_path(c, requirements) if requirements else config.parent / "requirements.yml",
        ansible_galaxy=str(_setting(c, "ansible_galaxy")),
        ansible_config_tool=str(_setting(c, "ansible_config_tool")),
        default_playbook=str(_setting(c, "default_playbook")),
        ssh_timeout=float(_setting(c, "ssh_timeout")),
        cache_dir=state_dir(c) / "cache" / "hosts",
    )


def base_env(p: Project) -> dict[str, str]:
    """What every ansible command gets: the repo's ansible.cfg, no colour, and an inventory source
    that does not parse is an error (Ansible's own parse error), never an empty inventory."""
    found = {"ANSIBLE_CONFIG": str(p.config)} if p.config.is_file() else {}
    return {
        **found,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
    }


def plugin_dir(kind: str) -> Path:
    """The package's own Ansible plugins of a kind (shipped inside blumeops_tasks, found by path)."""
    return Path(__file__).resolve().parent / "ansible_plugins" / kind


def mitogen_strategy_dir() -> Path | None:
    """Mitogen's stock strategy plugins (ansible_mitogen/plugins/strategy), when the extra is installed."""
    import importlib.util

    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return path if path.is_dir() else None


def _joined(first: list[str], configured: list[str]) -> str:
    return ":".join(dict.fromkeys([*first, *configured]))


def plugin_env(configured: Settings) -> dict[str, str]:
    """Our callback (and Mitogen's strategies, when installed) added to what ansible.cfg configures.

    An ANSIBLE_* variable replaces the ansible.cfg value, so the configured paths and callbacks
    (from Ansible's own config dump) are kept after ours.
    """
    env = {
        "ANSIBLE_CALLBACK_PLUGINS": _joined(
            [str(plugin_dir("callback"))], configured.paths("DEFAULT_CALLBACK_PLUGIN_PATH")
        ),
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(
            dict.fromkeys([CALLBACK, *(str(n) for n in configured.get("CALLBACKS_ENABLED") or [])])
        ),
    }
    mitogen = mitogen_strategy_dir()
    if mitogen is not None:
        env["ANSIBLE_STRATEGY_PLUGINS"] = _joined([str(mitogen)], configured.paths("DEFAULT_STRATEGY_PLUGIN_PATH"))
    return env


def roles_path_env(c: Context, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """ANSIBLE_ROLES_PATH with its entries inside the repo moved into the apply's snapshot, while an apply
    runs from one (the git-state guard vouched for them as committed files); else nothing to add."""
    environ = os.environ if environ is None else environ
    value = environ.get("ANSIBLE_ROLES_PATH", "")
    if not value or source_root(c) == repo_root(c):
        return {}
    # relative entries: from the root Ansible is started in (`cd ROOT && ...`), now the snapshot's
    entries = [str(source_path(c, entry)) for entry in value.split(os.pathsep) if entry]
    return {"ANSIBLE_ROLES_PATH": os.pathsep.join(entries)}


def ansible_env(c: Context, p: Project, results: Path | None = None) -> dict[str, str]:
    """The environment of a playbook run: base_env, our plugins, where the callback writes, and
    ANSIBLE_ROLES_PATH moved into the apply's snapshot when there is one."""
    from blumeops_tasks.hosts import ask

    env = {**base_env(p), **plugin_env(ask.settings(c, p)), **roles_path_env(c)}
    if results is not None:
        from blumeops_tasks.hosts.vault import VAULT_FILES_ENV, project_vault_files

        env[RESULTS_ENV] = str(results)
        env[VAULT_FILES_ENV] = os.pathsep.join(str(f) for f in project_vault_files(p))  # paths, never values
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
    return [p.inventory, p.config, p.playbooks, p.roles]


def load_inventory(c: Context, p: Project) -> Inventory:
    """Parse the inventory with ansible-inventory; an unparsable source is an error, not a warning.

    The parsed JSON is cached under the state dir, keyed by the inventory's files and settings,
    unless the inventory holds vault data (ansible-inventory lists encrypted vars files decrypted).
    """
    from blumeops_tasks.hosts import cache

    # On content (Ansible lists the variables as written, wherever the files are), so an apply's
    # snapshot of the commit reuses the clone's answer for the same files.
    key = cache.content_key(p.root, [p.inventory, p.config], extra=[inventory_command(p)])
    if p.cache_dir is not None and (cached := cache.get(p.cache_dir, "inventory", key)) is not None:
        return Inventory.from_list_json(cached)
    result: Result = shell.run(c, inventory_command(p), env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(
            f"The inventory {p.rel(p.inventory)} does not parse: {error_line(result.stderr or result.stdout)}; "
            f"fix it or point blumeops.hosts.inventory at a valid one."
        )
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise ProjectError(f"ansible-inventory printed no JSON for {p.rel(p.inventory)}.") from None
    from blumeops_tasks.hosts.vault import files_with_vault_data, inventory_roots

    # An encrypted vars file is listed decrypted: never written to the cache.
    if p.cache_dir is not None and not files_with_vault_data(inventory_roots(p)):
        cache.put(p.cache_dir, "inventory", key, data)
    return Inventory.from_list_json(data)


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip() and "WARNING" not in line]
    if not lines:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def error_line(text: str) -> str:
    """The first ERROR line ansible printed (with the parser's reason for an inventory that does not
    parse), else the last line."""
    for line in (text or "").splitlines():
        if "ERROR" in line:
            message = line.strip().removeprefix("[ERROR]:").removeprefix("ERROR!").strip()
            if "parse inventory" in message and (reason := _inventory_reason(text)):
                message += f" ({reason.rstrip('.')})"
            return message.rstrip(".")
    return last_line(text)


def _inventory_reason(text: str) -> str:
    """Why the inventory plugin meant for the file (yaml first, then ini) could not parse it."""
    for plugin in ("yaml", "ini"):
        match = re.search(rf"Failed to parse inventory with '{plugin}' plugin: (.+)", text)
        if match:
            return match.group(1).strip()
    return ""
