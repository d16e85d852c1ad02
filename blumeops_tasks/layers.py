"""The registry of layers. Adding a layer: write its module, add one line to LAYER_MODULES."""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from typing import TYPE_CHECKING

from blumeops_tasks.layer import Layer

if TYPE_CHECKING:
    from invoke.context import Context

LAYER_MODULES: tuple[str, ...] = (
    "blumeops_tasks.tailnet.layer",
    "blumeops_tasks.hosts.layer",
    "blumeops_tasks.argocd.layer",
)


@cache
def all_layers() -> tuple[Layer, ...]:
    return tuple(importlib.import_module(module).LAYER for module in LAYER_MODULES)


def names() -> tuple[str, ...]:
    return tuple(layer.name for layer in all_layers())


def closest(name: str, choices: tuple[str, ...]) -> str:
    """' (did you mean X?)' or ''."""
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


def in_use(c: Context | None = None) -> tuple[Layer, ...]:
    """The layers this repo uses: `blumeops.layers` names them (empty: every registered layer).

    A repo that adopts blumeops for its Ansible alone sets `layers: [hosts]`, and the cross-layer tasks
    (check, preflight, plan, pending, ...) leave the others out instead of failing on files it does not have.
    """
    registered = all_layers()
    if c is None:
        return registered
    from blumeops_tasks.config import setting

    wanted = setting(c, "layers") or []
    if isinstance(wanted, str):
        wanted = [part.strip() for part in wanted.split(",") if part.strip()]
    if not wanted:
        return registered
    known = {layer.name for layer in registered}
    unknown = [str(name) for name in wanted if str(name) not in known]
    if unknown:
        from blumeops_tasks.console import fail

        fail(
            f"blumeops.layers names {', '.join(repr(n) for n in unknown)}, which is no layer; "
            f"known layers: {', '.join(sorted(known))} (fix it in invoke.yaml)."
        )
    return tuple(layer for layer in registered if layer.name in {str(n) for n in wanted})


def select(name: str | None, c: Context | None = None) -> tuple[Layer, ...]:
    """The layers in use (all registered ones without a context), or the one named; an unknown name
    stops with the known names."""
    layers = in_use(c)
    if not name:
        return layers
    for layer in layers:
        if layer.name == name:
            return (layer,)
    from blumeops_tasks.console import fail

    choices = tuple(layer.name for layer in layers)
    if name in names():
        return fail(f"Layer {name!r} is not in use in this repo (blumeops.layers: {', '.join(choices)}).")
    return fail(f"Unknown layer {name!r}{closest(name, choices)}; known layers: {', '.join(choices)}.")
