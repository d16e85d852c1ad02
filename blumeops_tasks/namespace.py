"""Builds the root invoke namespace: root tasks plus one collection per registered layer."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke.collection import Collection
from invoke.exceptions import Exit

from blumeops_tasks import cross_layer, layers
from blumeops_tasks.config import compose_defaults, project_config_problem
from blumeops_tasks.gitops import tasks as gitops_tasks
from blumeops_tasks.redaction import declare_secret_names, redact


def build_namespace(root: Path) -> Collection:
    """The namespace for the tasks.py in `root`.

    invoke reads `invoke.yaml` only after tasks.py is imported, and dies on a broken one with a
    traceback; it is checked here first, so `inv` (even `inv --list`) stops with one sentence
    naming the file and the line or setting (exit 1; with `--json`, also as the JSON document).
    """
    ns = Collection()
    from blumeops_tasks.loop.tasks import ROOT_TASKS as LOOP_TASKS  # review, rollback, context

    for root_task in (*cross_layer.ROOT_TASKS, *gitops_tasks.ROOT_TASKS, *LOOP_TASKS):
        ns.add_task(root_task)
    registered = layers.all_layers()
    for layer in registered:
        ns.add_collection(layer.collection, name=layer.name)
        declare_secret_names(layer.secret_env)
    defaults = compose_defaults({layer.name: layer.defaults for layer in registered}, root)
    problem = project_config_problem(root, defaults)
    if problem:
        if "--json" in sys.argv[1:]:  # no task parsed yet: the promise of one JSON document still holds
            from blumeops_tasks import console

            console.print_json({"exit_code": 1, "error": problem})
        raise Exit(redact(problem), code=1)
    ns.configure(defaults)
    return ns
