"""The hosts layer: not built yet. Every check and plan row says so plainly."""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context

from blumeops_tasks.layer import Layer
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.preflight import CheckSpec, warn

NAME = "hosts"


def _not_built(_c: Context) -> list[CheckSpec]:
    return [CheckSpec(NAME, "layer", lambda: warn("layer not built yet", "see the hosts layer issue"))]


def _plan(_c: Context) -> LayerPlan:
    return LayerPlan(NAME, available=False, note="layer not built yet")


LAYER = Layer(
    name=NAME,
    help="Host configuration through Ansible over SSH",
    collection=Collection(NAME),
    paths=("roles/", "playbooks/", "inventory/", "ansible.cfg"),
    offline_checks=_not_built,
    preflight_checks=_not_built,
    plan=_plan,
    apply_task="hosts.provision",
)
