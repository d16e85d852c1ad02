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
    path_settings   names of settings under `blumeops.<name>` that point at the native files the
                    layer owns; `owned_paths(c, layer)` resolves them (git guard, pending, affected),
                    so an adopted repo's own layout is owned by configuration alone
    offline_checks  checks that need no network, credentials or remote host (`inv check`)
    preflight_checks checks of the operator's environment (`inv preflight`)
    plan            read-only preview of every target, as the shared plan model
    apply_task      the task that applies, as typed after `inv` (e.g. "hosts.provision")
    scoped_checks   `inv check --changed`: the checks of only what the given changed files touch (paths
                    relative to the repo, each inside the layer's own paths); None: all `offline_checks`
    targets         the targets the repo itself declares (hosts, apps, the stack), read offline; `inv pending`
                    reports each of them (journal entries add any others)
    defaults        config defaults under `blumeops.<name>`
    secret_env      environment variables this layer reads that are secret (redacted)
    env             non-secret environment variables it reads (documented in .env.example)
    """

    name: str
    help: str
    collection: Collection
    path_settings: tuple[str, ...]
    offline_checks: Callable[[Context], Sequence[CheckSpec]]
    preflight_checks: Callable[[Context], Sequence[CheckSpec]]
    plan: Callable[[Context], LayerPlan]
    apply_task: str
    targets: Callable[[Context], Sequence[str]] = lambda _c: ()
    scoped_checks: Callable[[Context, Sequence[str]], Sequence[CheckSpec]] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    env: tuple[str, ...] = ()


def owned_paths(c: Context, layer: Layer) -> tuple[str, ...]:
    """The repo-relative paths the layer owns, from its settings ("roles/" for a directory).

    A configured path outside the repository is not owned by it (git cannot guard it) and is left out.
    """
    from blumeops_tasks.config import repo_path, repo_root, setting

    root = repo_root(c)
    owned: list[str] = []
    for key in layer.path_settings:
        value = str(setting(c, f"{layer.name}.{key}") or "")
        if not value:  # an empty setting: the repo has no such file (e.g. no ansible.cfg)
            continue
        path = repo_path(c, value).resolve()
        try:
            relative = path.relative_to(root).as_posix()
        except ValueError:
            continue
        if relative == ".":  # the whole repo is nobody's layer
            continue
        owned.append(f"{relative}/" if path.is_dir() else relative)
    return tuple(dict.fromkeys(owned))


def checks_for_changes(c: Context, layer: Layer, changed: Sequence[str]) -> Sequence[CheckSpec]:
    """The layer's checks of what `changed` (repo-relative paths it owns) touches: its own
    `scoped_checks`, or every offline check when it declares none."""
    if layer.scoped_checks is None:
        return layer.offline_checks(c)
    return layer.scoped_checks(c, changed)


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
