"""The hosts layer: Ansible over SSH (ansible.cfg, inventory/, playbooks/, roles/, requirements.yml)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from invoke.collection import Collection

from blumeops_tasks.hosts import tasks
from blumeops_tasks.layer import Layer, deferred

if TYPE_CHECKING:
    from invoke.context import Context

    from blumeops_tasks.preflight import CheckSpec

NAME = "hosts"

DEFAULTS: dict[str, object] = {
    # Inventory directory or file (INVOKE_BLUMEOPS_HOSTS_INVENTORY overrides it).
    "inventory": "inventory",
    # One playbook per host: <playbooks>/<host>.yml; <default_playbook>.yml covers every host.
    "playbooks": "playbooks",
    "default_playbook": "site",
    "roles": "roles",
    "ansible_config": "ansible.cfg",
    "ansible_playbook": "ansible-playbook",
    "ansible_inventory": "ansible-inventory",
    "ansible_galaxy": "ansible-galaxy",
    "ansible_config_tool": "ansible-config",
    # ansible-galaxy's requirements file (collections and roles); `inv hosts.deps` installs it.
    # Empty: requirements.yml beside ansible_config.
    "requirements": "",
    # Seconds an SSH reachability probe may take (preflight, per host, run concurrently).
    "ssh_timeout": 8,
}


def _offline(c: Context) -> list[CheckSpec]:
    from blumeops_tasks.config import lint_strict
    from blumeops_tasks.hosts import checks
    from blumeops_tasks.hosts.project import project

    return checks.offline_checks(c, project(c), lint_strict(c))


def _scoped(c: Context, changed: Sequence[str]) -> list[CheckSpec]:
    from blumeops_tasks.config import lint_strict
    from blumeops_tasks.hosts import checks
    from blumeops_tasks.hosts.project import project

    return checks.scoped_checks(c, project(c), list(changed), lint_strict(c))


def _preflight(c: Context) -> list[CheckSpec]:
    """Every host in the inventory, every role of every playbook (`inv preflight`)."""
    from blumeops_tasks.hosts import checks
    from blumeops_tasks.hosts.inventory import ProjectError, playbook_for
    from blumeops_tasks.hosts.project import project
    from blumeops_tasks.hosts.workflow import selected

    p = project(c)
    inv, problem = checks.inventory_or_failure(c, p)
    try:
        roles = selected(c, p, playbook_for(p.playbooks, None, p.default_playbook), None, None).roles
    except ProjectError:  # a default playbook Ansible cannot list shows up in `inv check`
        roles = []
    specs = checks.preflight_checks(c, p, inv, inv.hosts if inv else [], roles)
    return [*specs, problem] if problem else specs


def _targets(c: Context) -> list[str]:
    """Every host of the inventory, as ansible-inventory lists it (cached); none when it cannot."""
    from blumeops_tasks.hosts.inventory import ProjectError
    from blumeops_tasks.hosts.project import load_inventory, project

    try:
        return list(load_inventory(c, project(c)).hosts)
    except ProjectError:
        return []


collection = Collection(NAME, tasks.preview, tasks.provision, tasks.run, tasks.status, tasks.deps)

LAYER = Layer(
    name=NAME,
    help="Host configuration through Ansible over SSH",
    collection=collection,
    path_settings=("roles", "playbooks", "inventory", "ansible_config"),
    offline_checks=_offline,
    scoped_checks=_scoped,
    preflight_checks=_preflight,
    plan=deferred("blumeops_tasks.hosts.workflow:layer_plan"),
    apply_task="hosts.provision",
    targets=_targets,
    defaults=DEFAULTS,
    secret_env=("BORG_PASSPHRASE",),
)
