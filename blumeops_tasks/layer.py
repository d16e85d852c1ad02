"""The layer contract. A layer is one module exposing `LAYER = Layer(...)`.

Root commands (`check`, `preflight`, `plan`, and the GitOps guardrails) iterate over
`blumeops_tasks.layers.LAYERS`; adding a layer is one new module plus one line there.
Everything on a `Layer` must be cheap to build: heavy imports happen inside the callables.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `inv --list` must not pay for these modules
    from invoke.collection import Collection
    from invoke.context import Context

    from blumeops_tasks.plan import LayerPlan
    from blumeops_tasks.preflight import CheckSpec


@dataclass(frozen=True)
class Layer:
    """What every layer provides.

    name            collection name and config key (`blumeops.<name>`)
    help            one line for listings
    collection      the layer's invoke collection (its tasks)
    paths           repo paths the layer owns (git guard, pending, affected)
    offline_checks  checks that need no network, credentials or remote host (`inv check`)
    preflight_checks checks of the operator's environment (`inv preflight`)
    plan            read-only preview of every target, as the shared plan model
    apply_task      the task that applies, as typed after `inv` (e.g. "hosts.provision")
    defaults        config defaults under `blumeops.<name>`
    secret_env      environment variables this layer reads that are secret (redacted)
    env             non-secret environment variables it reads (documented in .env.example)
    """

    name: str
    help: str
    collection: Collection
    paths: tuple[str, ...]
    offline_checks: Callable[[Context], Sequence[CheckSpec]]
    preflight_checks: Callable[[Context], Sequence[CheckSpec]]
    plan: Callable[[Context], LayerPlan]
    apply_task: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    env: tuple[str, ...] = ()


def deferred(target: str) -> Callable[..., Any]:
    """`"package.module:function"` as a callable that imports the module on first call.

    Layers hand these to `Layer(...)` so that building the namespace (`inv --list`) never imports
    a layer's checks, parsers or clients.
    """
    module_name, _, function_name = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module_name), function_name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = function_name
    call.__doc__ = f"Deferred {target}."
    return call
