"""Settings under the invoke config key `blumeops`.

Layering (invoke's own): collection defaults declared here and by each layer
< `invoke.yaml` beside tasks.py < `INVOKE_BLUMEOPS_*` environment variables < task flags.
Secrets never live here: they come from the environment, which `.env` fills without overriding.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke.context import Context

ROOT_DEFAULTS: dict[str, Any] = {
    # The repository root; tasks.py sets it to its own directory.
    "root": "",
    # Where local state (journal, locks) lives, relative to root unless absolute.
    "state_dir": ".blumeops",
    # The apply journal (one JSON line per apply), relative to state_dir unless absolute.
    "journal": "journal.jsonl",
    # dotenv file with secrets, relative to root unless absolute; loaded without overriding.
    "env_file": ".env",
    # Per-check timeouts in seconds.
    "check_timeout": 60.0,
    "preflight_timeout": 10.0,
    # House rules (our conventions, e.g. a role's meta/argument_specs.yml) are warnings unless strict.
    "lint": {"strict": False},
}

MISSING = object()


def compose_defaults(layer_defaults: Mapping[str, Mapping[str, Any]], root: Path) -> dict[str, Any]:
    """The `blumeops` config tree: root settings plus one sub-tree per layer."""
    tree: dict[str, Any] = copy.deepcopy(ROOT_DEFAULTS)
    tree["root"] = str(root)
    for name, defaults in layer_defaults.items():
        tree[name] = dict(defaults)
    return {"blumeops": tree}


def setting(c: Context, dotted: str, flag: Any = None) -> Any:
    """A setting by dotted path under `blumeops` (e.g. "hosts.inventory"); a given flag wins."""
    if flag is not None:
        return flag
    node: Any = c.config.get("blumeops", {})
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError):
            from blumeops_tasks.console import fail

            fail(
                f"Setting blumeops.{dotted} is missing from the invoke config; "
                f"restore its default in the layer module or set it in invoke.yaml."
            )
    return node


def lint_strict(c: Context) -> bool:
    """Whether house-rule findings fail `inv check` (`blumeops.lint.strict`) instead of warning."""
    return bool(setting(c, "lint.strict"))


def repo_root(c: Context) -> Path:
    root = setting(c, "root")
    return Path(root).resolve() if root else Path.cwd().resolve()


def repo_path(c: Context, value: str | Path) -> Path:
    """Resolve a configured path: absolute stays, relative is taken from the repo root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else repo_root(c) / path


def state_dir(c: Context) -> Path:
    return repo_path(c, setting(c, "state_dir"))


def load_env_file(c: Context) -> Path | None:
    """Load `.env` into the environment without overriding variables already set."""
    path = repo_path(c, setting(c, "env_file"))
    if not path.is_file():
        return None
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
    return path
