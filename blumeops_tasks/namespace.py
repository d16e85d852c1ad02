"""Builds the root invoke namespace: root tasks plus one collection per registered layer."""

from __future__ import annotations

from pathlib import Path

from invoke.collection import Collection

from blumeops_tasks import cross_layer, layers
from blumeops_tasks.config import compose_defaults
from blumeops_tasks.gitops import tasks as gitops_tasks
from blumeops_tasks.redaction import declare_secret_names


def build_namespace(root: Path) -> Collection:
    ns = Collection()
    from blumeops_tasks.loop.tasks import ROOT_TASKS as LOOP_TASKS  # review, rollback, context

    for root_task in (*cross_layer.ROOT_TASKS, *gitops_tasks.ROOT_TASKS, *LOOP_TASKS):
        ns.add_task(root_task)
    registered = layers.all_layers()
    for layer in registered:
        ns.add_collection(layer.collection, name=layer.name)
        declare_secret_names(layer.secret_env)
    ns.configure(compose_defaults({layer.name: layer.defaults for layer in registered}, root))
    return ns
