"""`inv init`: adopt blumeops in an existing repo by writing the few files it needs, never overwriting one.

Writes tasks.py (the namespace), invoke.yaml (every layer's path settings at their defaults, to point at
the repo's own layout), mise.toml (the entry points; tools declared per task) and .env.example (every
variable the layers read), and adds .env and the local state to .gitignore. A file that exists is kept;
an existing mise.toml only gains the tasks it lacks, and only when the result still parses.
Runs as `inv init` in a repo with tasks.py, or as `python -m blumeops_tasks init` in one without.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from invoke.context import Context

from blumeops_tasks.tasking import task

Action = Literal["wrote", "kept", "added"]
GITIGNORE_ENTRIES = (".env", ".blumeops/", ".venv/")


@dataclass(frozen=True)
class Written:
    path: str
    action: Action
    detail: str = ""


def template(name: str) -> str:
    from importlib.resources import files

    return files("blumeops_tasks").joinpath("templates", name).read_text(encoding="utf-8")


def invoke_yaml() -> str:
    """Every layer's path settings at their defaults: the keys to point at the repo's own layout."""
    import yaml

    from blumeops_tasks import layers

    tree = {
        layer.name: {key: layer.defaults[key] for key in layer.path_settings if key in layer.defaults}
        for layer in layers.all_layers()
    }
    header = (
        "# blumeops settings: where each layer's native files live, relative to this file's directory.\n"
        "# `inv check` names any that points nowhere; `inv config` shows every effective setting.\n"
    )
    return header + yaml.safe_dump({"blumeops": tree}, sort_keys=False)


def env_example() -> str:
    """Every environment variable the layers read, one section per layer; secrets marked."""
    from blumeops_tasks import layers

    lines = [
        "# Copy to .env (gitignored) and fill in. Variables already set in the environment win over this file.",
        "# Secret values are never printed: every output shows them as ***.",
    ]
    for layer in layers.all_layers():
        if not (layer.secret_env or layer.env):
            continue
        lines += ["", f"# --- {layer.name}: {layer.help} ---"]
        lines += [f"# {name}=  (secret)" for name in layer.secret_env]
        lines += [f"# {name}=" for name in layer.env]
    return "\n".join(lines) + "\n"


def _task_tables(text: str) -> dict[str, str]:
    """The `[tasks.NAME]` tables of a mise.toml text, each as its own text."""
    chunks = re.split(r"(?m)^(?=\[tasks\.)", text)
    tables: dict[str, str] = {}
    for chunk in chunks[1:]:
        match = re.match(r"\[tasks\.([A-Za-z0-9_-]+)\]", chunk)
        if match:
            tables[match.group(1)] = chunk.rstrip() + "\n"
    return tables


def merge_mise(existing: str, wanted: str) -> tuple[str | None, list[str]]:
    """The existing mise.toml plus the wanted task tables it lacks (None when it would not parse)."""
    import tomllib

    try:
        have = set(tomllib.loads(existing).get("tasks", {}))
    except tomllib.TOMLDecodeError:
        return None, []
    missing = {name: text for name, text in _task_tables(wanted).items() if name not in have}
    if not missing:
        return existing, []
    merged = existing.rstrip("\n") + "\n\n" + "\n".join(missing.values())
    try:
        tomllib.loads(merged)
    except tomllib.TOMLDecodeError:
        return None, []
    return merged, list(missing)


def write_files(root: Path) -> list[Written]:
    """Write what is missing under `root`; never replace a file's content."""
    done: list[Written] = []
    for name, text in (
        ("tasks.py", template("tasks.py.tmpl")),
        ("invoke.yaml", invoke_yaml()),
        (".env.example", env_example()),
    ):
        path = root / name
        if path.exists():
            done.append(Written(name, "kept", "exists"))
        else:
            path.write_text(text, encoding="utf-8")
            done.append(Written(name, "wrote"))
    done.append(_mise(root / "mise.toml"))
    done.append(_gitignore(root / ".gitignore"))
    return done


def _mise(path: Path) -> Written:
    wanted = template("mise.toml.tmpl")
    if not path.exists():
        path.write_text(wanted, encoding="utf-8")
        return Written(path.name, "wrote")
    merged, added = merge_mise(path.read_text(encoding="utf-8"), wanted)
    if merged is None:
        return Written(path.name, "kept", "left as it is (it or the merge would not parse); add the blumeops tasks")
    if not added:
        return Written(path.name, "kept", "has every blumeops task")
    path.write_text(merged, encoding="utf-8")
    return Written(path.name, "added", f"tasks {', '.join(added)}")


def _gitignore(path: Path) -> Written:
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip() for line in existing.splitlines()}
    missing = [entry for entry in GITIGNORE_ENTRIES if entry not in present]
    if not missing:
        return Written(path.name, "kept", "already ignores " + ", ".join(GITIGNORE_ENTRIES))
    prefix = existing if not existing or existing.endswith("\n") else existing + "\n"
    path.write_text(prefix + "\n".join(missing) + "\n", encoding="utf-8")
    return Written(path.name, "added" if existing else "wrote", ", ".join(missing))


@task(help={"root": "the repository to write into (default: blumeops.root, else the current directory)"})
def init(c: Context, root: str | None = None) -> None:
    """Adopt blumeops here: write tasks.py, invoke.yaml, mise.toml, .env.example; never overwrite a file."""
    from blumeops_tasks import console

    configured = c.config.get("blumeops", {}).get("root") if hasattr(c.config, "get") else None
    target = Path(root or configured or Path.cwd()).expanduser().resolve()
    if not target.is_dir():
        console.fail(f"{target} is not a directory; pass --root=PATH of your repository.")
    done = write_files(target)
    console.table(f"inv init in {target}", ["file", "action", "detail"], [[w.path, w.action, w.detail] for w in done])
    console.out("Next: point invoke.yaml at your layout, then `inv check` (see docs/adopt.md).")
