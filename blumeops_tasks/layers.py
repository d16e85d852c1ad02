"""The registry of layers. Adding a layer: write its module, add one line to LAYER_MODULES."""

from __future__ import annotations

import difflib
import importlib
from functools import cache

from blumeops_tasks.layer import Layer

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


def select(name: str | None) -> tuple[Layer, ...]:
    """All layers, or the one named; an unknown name stops with the known names."""
    layers = all_layers()
    if not name:
        return layers
    for layer in layers:
        if layer.name == name:
            return (layer,)
    from blumeops_tasks.console import fail

    return fail(f"Unknown layer {name!r}{closest(name, names())}; known layers: {', '.join(names())}.")
