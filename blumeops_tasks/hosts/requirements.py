"""Collections and roles from requirements.yml (ansible-galaxy's format): what is missing, how to install.

What is installed is Ansible's answer: `ansible-galaxy collection list --format json` for collections,
the configured roles path (`ansible-config dump`) for roles. Parsing the file's entries is pure.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks import shell
from blumeops_tasks.hosts.inventory import ProjectError
from blumeops_tasks.hosts.project import Project, base_env, error_line


@dataclass(frozen=True)
class Requirement:
    kind: str  # "collection" or "role"
    name: str  # what it is installed as ("" when only installing can tell, e.g. a git URL of a collection)
    source: str  # as written in the file


def _role_name(entry: Any) -> Requirement | None:
    if isinstance(entry, str):
        entry = {"src": entry}
    if not isinstance(entry, dict):
        return None
    source = str(entry.get("src") or entry.get("name") or "")
    name = str(entry.get("name") or "")
    if not name:
        # ansible-galaxy names a role from a URL or archive by its last path part, without .git / .tar.gz.
        name = re.sub(r"(\.git|\.tar\.gz|\.tgz)$", "", source.rstrip("/").rsplit("/", 1)[-1].split(",")[0])
    return Requirement("role", name, source)


def _collection_name(entry: Any, base: Path) -> Requirement | None:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or not entry.get("name"):
        return None
    source = str(entry["name"])
    kind = str(entry.get("type") or "")
    if kind == "dir" or (not kind and source.startswith((".", "/"))):
        galaxy = (base / source / "galaxy.yml").resolve()
        import yaml

        try:
            meta = yaml.safe_load(galaxy.read_text(encoding="utf-8")) or {}
            return Requirement("collection", f"{meta['namespace']}.{meta['name']}", source)
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            return Requirement("collection", "", source)
    if kind == "file" or source.endswith((".tar.gz", ".tgz")):
        match = re.match(r"([a-z0-9_]+)-([a-z0-9_]+)-", Path(source).name)
        return Requirement("collection", f"{match.group(1)}.{match.group(2)}" if match else "", source)
    if re.fullmatch(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+", source):
        return Requirement("collection", source, source)
    return Requirement("collection", "", source)


def parse(path: Path) -> list[Requirement]:
    """The file's roles and collections; a list at the top level is the old roles-only format."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProjectError(f"Cannot read {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}.") from None
    roles = data if isinstance(data, list) else (data or {}).get("roles") or [] if isinstance(data, dict) else []
    collections = (data.get("collections") or []) if isinstance(data, dict) else []
    found = [r for r in (_role_name(e) for e in roles) if r is not None]
    found += [r for r in (_collection_name(e, path.parent) for e in collections) if r is not None]
    return found


def installed_collections(c: Context, p: Project) -> set[str]:
    command = (
        f"cd {shlex.quote(str(p.root))} && {shlex.join([p.ansible_galaxy, 'collection', 'list', '--format', 'json'])}"
    )
    result = shell.run(c, command, env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(f"ansible-galaxy collection list failed: {error_line(result.stderr or result.stdout)}.")
    try:
        data = json.loads(result.stdout or "{}")
    except ValueError:
        raise ProjectError("ansible-galaxy collection list printed no JSON.") from None
    return {str(name) for entries in data.values() if isinstance(entries, dict) for name in entries}


def missing(c: Context, p: Project) -> list[Requirement]:
    """Requirements Ansible cannot find: collections not listed by ansible-galaxy, roles in no roles path."""
    from blumeops_tasks.hosts import ask

    wanted = parse(p.requirements)
    if not wanted:
        return []
    collections = installed_collections(c, p) if any(r.kind == "collection" for r in wanted) else set()
    role_dirs = [Path(d) for d in ask.settings(c, p).paths("DEFAULT_ROLES_PATH")]
    absent = []
    for req in wanted:
        if (req.kind == "collection" and req.name and req.name not in collections) or (
            req.kind == "role" and req.name and not any((d / req.name).is_dir() for d in role_dirs)
        ):
            absent.append(req)
    return absent


def describe(reqs: list[Requirement]) -> str:
    return ", ".join(f"{r.kind} {r.name or r.source}" for r in reqs)


NETWORK_SIGNS = (
    "Could not resolve host",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Failed to connect",
    "Couldn't connect",
    "Connection refused",
    "Network is unreachable",
    "urlopen error",
    "unable to access",
)


def galaxy_failure(output: str) -> tuple[bool, str]:
    """(whether the network was the cause, the line that says why) from ansible-galaxy's output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    why = next((line for line in lines if line.startswith("fatal:")), "")
    why = why or next((line for line in lines if "NOT installed" in line), "")
    reason = why.removeprefix("[WARNING]:").strip() if why else error_line(output)
    return any(sign in output for sign in NETWORK_SIGNS), reason


def install_command(p: Project) -> str:
    """ansible-galaxy installs roles and collections from the file, from its directory (relative sources)."""
    return (
        f"cd {shlex.quote(str(p.requirements.parent))} && "
        f"{shlex.join([p.ansible_galaxy, 'install', '-r', p.requirements.name])}"
    )
