"""Settings under the invoke config key `blumeops`.

Layering (invoke's own): collection defaults declared here and by each layer
< `invoke.yaml` beside tasks.py < `INVOKE_BLUMEOPS_*` environment variables < task flags.
Secrets never live here: they come from the environment, which `.env` fills without overriding.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks import onepassword

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
    # The layers this repo uses (empty: every registered layer), e.g. [hosts] for a repo with only Ansible.
    "layers": [],
    # House rules (our conventions, e.g. a role's meta/argument_specs.yml) are warnings unless strict.
    "lint": {"strict": False},
}

# Set by an apply while its tools read a snapshot of its commit (never configured by hand).
SOURCE_ROOT = "source_root"

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


def source_root(c: Context) -> Path:
    """Where the layers' own files are read from: the repo root, or while an apply runs from a
    snapshot of its commit (gitops/snapshot.py), that snapshot."""
    tree = (c.config.get("blumeops") or {}).get(SOURCE_ROOT)
    return Path(tree) if tree else repo_root(c)


def source_path(c: Context, value: str | Path) -> Path:
    """A configured path to a layer's files (inventory, playbooks, a Pulumi program): relative to
    `source_root`; an absolute path inside the repo is moved into the snapshot while one is used."""
    path = Path(value).expanduser()
    root, repo = source_root(c), repo_root(c)
    if not path.is_absolute():
        return root / path
    if root != repo:
        try:
            return root / path.resolve().relative_to(repo)
        except ValueError:
            pass
    return path


def state_dir(c: Context) -> Path:
    return repo_path(c, setting(c, "state_dir"))


def env_file(c: Context) -> Path:
    """Where `.env` is (`blumeops.env_file`, relative to the repo root unless absolute)."""
    return repo_path(c, setting(c, "env_file"))


def read_env_file(path: Path, *, report: bool = False) -> dict[str, str | None]:
    """The variables a dotenv file sets, as python-dotenv parses them (the environment wins in
    `${VAR}` interpolation, as it does for the values). A file that cannot be read or is not
    UTF-8 stops with one sentence naming it; with `report`, lines that are not `NAME=value` are
    named in a note (python-dotenv skips them)."""
    from blumeops_tasks.console import fail

    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"Cannot read {path}: {exc.strerror}; fix its permissions or point blumeops.env_file elsewhere.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        fail(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            f"save it as UTF-8 or remove that byte."
        )
    from dotenv.main import DotEnv
    from dotenv.parser import parse_stream

    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad and report:
        from blumeops_tasks.console import note

        lines = ", ".join(str(line) for line in bad)
        note(f"{path}: line {lines} is not NAME=value and is ignored; fix or remove it.")
    dotenv_log = logging.getLogger("dotenv.main")
    silenced, dotenv_log.disabled = dotenv_log.disabled, True  # its warning does not name the file
    try:
        return DotEnv(None, stream=io.StringIO(text), interpolate=True, override=False).dict()
    finally:
        dotenv_log.disabled = silenced


def load_env_file(c: Context) -> Path | None:
    """Load `.env` into the environment without overriding variables already set.

    A value written `op://vault/item/field` is read with the 1Password CLI (`onepassword`), once
    per process, and redacted whatever its variable is called; so is such a reference already in
    the environment for a variable `.env` names (`mise` exports `.env` unresolved).
    """
    path = env_file(c)
    if not path.is_file():
        return None
    values = read_env_file(path, report=True)
    for name, value in values.items():
        if value is not None and name not in os.environ and not onepassword.is_reference(value):
            os.environ[name] = value
    references = onepassword.references_in(values)
    if references:
        onepassword.load(references, source=path)
    return path


# --- invoke's project config file, read before invoke does ------------------------------------

# invoke's own search order beside tasks.py (invoke.py is code, which invoke alone runs).
PROJECT_CONFIG_FILES = ("invoke.yaml", "invoke.yml", "invoke.json", "invoke.py")


def project_config_problem(root: Path, defaults: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """One sentence on what invoke would die on in the config beside tasks.py ("" when nothing).

    invoke loads `invoke.yaml` itself, but a syntax error, a value of the wrong shape (a string
    where it merges a mapping: `AmbiguousMergeError`) or a number setting that is not a number
    ends in its traceback, even for `inv --list`. This reads the file first and names the file,
    the line or the setting. `defaults` is the collection's config (`{"blumeops": {...}}`).
    """
    from invoke.config import Config

    env = os.environ if environ is None else environ
    known: dict[str, Any] = {**Config.global_defaults(), **defaults}
    problem = _env_number_problem(env, "blumeops", known.get("blumeops", {}))
    path = next((root / name for name in PROJECT_CONFIG_FILES if (root / name).is_file()), None)
    if problem or path is None or path.suffix == ".py":
        return problem
    return _config_file_problem(path, known)


def _config_file_problem(path: Path, known: Mapping[str, Any]) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return f"Cannot read {path}: {exc.strerror}; fix its permissions."
    except UnicodeDecodeError as exc:
        return f"{path} is not UTF-8 text (byte at offset {exc.start}); save it as UTF-8."
    parsed, problem = _parse_config(path, text)
    if problem or parsed is None:
        return problem
    if not isinstance(parsed, dict):
        return f"{path} must be a mapping of settings (e.g. `blumeops:`), not {_describe(parsed)}."
    return _shape_problem(path, parsed, known, "")


def _parse_config(path: Path, text: str) -> tuple[Any, str]:
    """(the parsed file, "") or (None, the sentence saying where its syntax is broken)."""
    import yaml

    if path.suffix == ".json":
        try:
            return json.loads(text), ""
        except json.JSONDecodeError as exc:
            return None, f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; fix it there."
    try:
        return yaml.safe_load(text), ""
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, f"{path} is not valid YAML: {exc.problem or exc.context}{where}; fix the syntax there."
    except yaml.YAMLError as exc:
        return None, f"{path} is not valid YAML: {str(exc).splitlines()[0]}; fix the syntax."


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shape_problem(path: Path, data: Mapping[Any, Any], defaults: Mapping[str, Any], where: str) -> str:
    """The first setting whose value invoke cannot merge, or that is not the kind its default is."""
    for key, value in data.items():
        if key not in defaults:
            continue
        default, dotted = defaults[key], f"{where}{key}"
        wrong = ""
        if isinstance(default, Mapping):
            if not isinstance(value, dict):
                wrong = "a mapping of settings"
            else:
                problem = _shape_problem(path, value, default, f"{dotted}.")
                if problem:
                    return problem
        elif isinstance(value, dict):
            wrong = "a single value"
        elif dotted.startswith("blumeops."):  # our own settings: the kind their default has
            if isinstance(default, bool) and not isinstance(value, bool):
                wrong = "true or false"
            elif _is_number(default) and not _is_number(value):
                wrong = "a number"
            elif isinstance(default, str) and isinstance(value, list):
                wrong = "a single value"
        if wrong:
            return f"{path}: {dotted} must be {wrong}, not {_describe(value)}; fix it or remove it to use the default."
    return ""


def _env_number_problem(environ: Mapping[str, str], dotted: str, defaults: Any) -> str:
    """An `INVOKE_BLUMEOPS_*` variable for a number setting that is not a number (invoke dies on it)."""
    if isinstance(defaults, Mapping):
        for key, value in defaults.items():
            problem = _env_number_problem(environ, f"{dotted}.{key}", value)
            if problem:
                return problem
        return ""
    name = "INVOKE_" + dotted.replace(".", "_").upper()
    if _is_number(defaults) and name in environ:
        try:
            type(defaults)(environ[name])  # what invoke does with it
        except ValueError:
            kind = "a whole number" if isinstance(defaults, int) else "a number"
            return f"{name} must be {kind} (it sets {dotted}), not {environ[name]!r}; fix or unset it."
    return ""
