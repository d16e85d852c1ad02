"""What we ask Ansible instead of working it out ourselves.

- its settings: `ansible-config dump -t all --format json` (read one way, with the repo's ansible.cfg);
- which hosts a run touches, which roles and tags it selects: `ansible-playbook --list-hosts
  --list-tasks --list-tags` with the same `--limit`/`--tags` the run gets;
- which hosts a pattern names: the same listing over a generated playbook with one play per pattern.

Every answer depends only on files and the ANSIBLE_* environment, so each is cached on their
fingerprint (hosts/cache.py). Only successes are cached. The parsers are pure (tested on captured text).
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks import shell
from blumeops_tasks.hosts.inventory import ProjectError
from blumeops_tasks.hosts.project import Project, base_env, error_line, source_files

# Tags Ansible gives a meaning of its own: never "unknown".
SPECIAL_TAGS = frozenset({"all", "always", "never", "tagged", "untagged"})


# -- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The effective Ansible settings we need, as `ansible-config dump` reports them."""

    values: dict[str, Any]
    ssh: dict[str, Any]  # the ssh connection plugin's options

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def paths(self, name: str) -> list[str]:
        value = self.values.get(name) or []
        return [str(v) for v in (value if isinstance(value, list) else str(value).split(":")) if v]


def parse_dump(data: Any) -> Settings:
    """The JSON of `ansible-config dump -t all --format json`: base settings, then one entry per plugin type."""
    values: dict[str, Any] = {}
    ssh: dict[str, Any] = {}
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict):
            continue
        if "name" in entry:
            values[str(entry["name"])] = entry.get("value")
            continue
        for plugin in entry.get("CONNECTION_PLUGINS") or []:
            for option in (plugin or {}).get("ssh") or []:
                ssh[str(option.get("name"))] = option.get("value")
    return Settings(values, ssh)


# Where the repo root stood in a cached settings dump (a path never seen in a real one).


def settings(c: Context, p: Project) -> Settings:
    """Ansible's settings, cached on ansible.cfg's content and place in the repo, with the repo root's
    paths stored relative to it: an apply's snapshot of the commit (a byte-identical copy elsewhere)
    reuses the clone's answer, each path moved into the snapshot."""
    from blumeops_tasks.hosts import cache

    dump = [p.ansible_config_tool, "dump", "-t", "all", "--format", "json"]
    command = f"cd {shlex.quote(str(p.root))} && {shlex.join(dump)}"
    # ANSIBLE_CONFIG names p.config when it exists; otherwise Ansible reads ./ansible.cfg of the root.
    read = p.config if p.config.is_file() else p.root / "ansible.cfg"
    key = cache.content_key(p.root, [read], extra=[shlex.join(dump), str(p.config.is_file())])
    root = str(p.root)
    if p.cache_dir is not None and (cached := cache.get(p.cache_dir, "config", key)) is not None:
        return parse_dump(cache.relocate(cached, cache.ROOT_MARK, root))
    result = shell.run(c, command, env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(
            f"ansible-config cannot read {p.rel(p.config)}: {error_line(result.stderr or result.stdout)}; fix it."
        )
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise ProjectError(f"ansible-config dump printed no JSON for {p.rel(p.config)}.") from None
    if p.cache_dir is not None:
        cache.put(p.cache_dir, "config", key, cache.relocate(data, root, cache.ROOT_MARK))
    return parse_dump(data)


# -- listings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    """One play as `ansible-playbook --list-hosts --list-tasks --list-tags` shows it."""

    playbook: str
    name: str
    pattern: str  # the play's `hosts:` as the play header prints it
    hosts: tuple[str, ...]
    task_prefixes: tuple[str, ...]  # the `role : ` prefix of each listed task ("" for a play's own task)
    tags: tuple[str, ...]  # TASK TAGS

    def roles(self, known: set[str] | None = None) -> list[str]:
        """Roles with a listed task, in order; only names in `known` when given (a task name may hold ' : ')."""
        return [r for r in dict.fromkeys(self.task_prefixes) if r and (known is None or r in known)]


_PLAYBOOK = re.compile(r"^playbook: (.*)$")
_PLAY = re.compile(r"^  play #\d+ \((.*)\): (.*?)\tTAGS: \[.*\]$")
_HOSTS = re.compile(r"^    hosts \((\d+)\):$")
_TASK_TAGS = re.compile(r"^      TASK TAGS: \[(.*)\]$")
_TASK = re.compile(r"^      (.*?)\tTAGS: \[.*\]$")


def _split_tags(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def parse_listing(text: str) -> list[Play]:
    """Plays from Ansible's listing text, in the order Ansible printed them."""
    plays: list[Play] = []
    playbook = ""
    current: dict[str, Any] | None = None
    lines = text.splitlines()
    index = 0

    def close() -> None:
        if current is not None:
            plays.append(Play(**current))

    while index < len(lines):
        line = lines[index]
        index += 1
        if match := _PLAYBOOK.match(line):
            close()
            current, playbook = None, match.group(1).strip()
        elif match := _PLAY.match(line):
            close()
            current = {"playbook": playbook, "pattern": match.group(1), "name": match.group(2), "hosts": ()}
            current.update(task_prefixes=(), tags=())
        elif current is None:
            continue
        elif match := _HOSTS.match(line):
            count = int(match.group(1))
            # ansible-playbook prints a play's hosts from a set (order varies by run): sorted here.
            current["hosts"] = tuple(sorted(h.strip() for h in lines[index : index + count]))
            index += count
        elif match := _TASK_TAGS.match(line):
            current["tags"] = _split_tags(match.group(1))
        elif match := _TASK.match(line):
            name = match.group(1)
            current["task_prefixes"] = (*current["task_prefixes"], name.split(" : ", 1)[0] if " : " in name else "")
    close()
    return plays


def listing_command(
    p: Project,
    playbooks: list[Path],
    *,
    limit: str | None = None,
    tags: str | None = None,
    skip_tags: str | None = None,
) -> str:
    parts = [p.ansible_playbook, "-i", str(p.inventory), *(p.rel(b) for b in playbooks)]
    parts += ["--list-hosts", "--list-tasks", "--list-tags"]
    if tags:
        parts += ["--tags", tags]
    if skip_tags:
        parts += ["--skip-tags", skip_tags]
    if limit:
        parts += ["--limit", limit]
    return f"cd {shlex.quote(str(p.root))} && {shlex.join(parts)}"


def listing(
    c: Context,
    p: Project,
    playbooks: list[Path],
    *,
    limit: str | None = None,
    tags: str | None = None,
    skip_tags: str | None = None,
) -> list[Play]:
    """Ansible's own listing of the playbooks; its error (a parse error, a --limit that matches
    nothing, a broken inventory) is raised as one sentence."""
    from blumeops_tasks.hosts import cache

    command = listing_command(p, playbooks, limit=limit, tags=tags, skip_tags=skip_tags)
    # On content (Ansible's listing names no path of the checkout), so an apply's snapshot of the
    # commit reuses the clone's listing of the same files.
    key = cache.content_key(p.root, [*source_files(p), *playbooks], extra=[command])
    if p.cache_dir is not None and (cached := cache.get(p.cache_dir, "listing", key)) is not None:
        return parse_listing(str(cached))
    result = shell.run(c, command, env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(f"Ansible cannot list {_names(p, playbooks)}: {error_line(result.stderr or result.stdout)}.")
    if p.cache_dir is not None:
        cache.put(p.cache_dir, "listing", key, result.stdout)
    return parse_listing(result.stdout)


def _names(p: Project, playbooks: list[Path]) -> str:
    return ", ".join(p.rel(b) for b in playbooks)


def touched_hosts(plays: list[Play]) -> list[str]:
    """Every host any play targets, in first-seen order."""
    return list(dict.fromkeys(h for play in plays for h in play.hosts))


def all_tags(plays: list[Play]) -> set[str]:
    return {t for play in plays for t in play.tags}


def unknown_tags(requested: str | None, known: set[str]) -> list[str]:
    """Requested tags no task carries (Ansible's special tags always count as known)."""
    wanted = [t.strip() for t in (requested or "").split(",") if t.strip()]
    return [t for t in wanted if t not in known and t not in SPECIAL_TAGS]


def hosts_for(c: Context, p: Project, patterns: list[str]) -> dict[str, list[str]]:
    """Pattern -> the hosts Ansible matches, in one listing of a playbook with one play per pattern."""
    import hashlib

    import yaml

    if not patterns:
        return {}
    plays = [{"name": f"pattern {i}", "hosts": pattern, "gather_facts": False} for i, pattern in enumerate(patterns)]
    text = yaml.safe_dump(plays, sort_keys=False)
    # A stable file (named by its content) keeps the listing's cache key stable between runs.
    directory = p.cache_dir if p.cache_dir is not None else Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    book = directory / f"patterns-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yml"
    if not book.is_file():
        book.write_text(text, encoding="utf-8")
    by_name = {play.name: list(play.hosts) for play in listing(c, p, [book])}
    return {pattern: by_name.get(f"pattern {i}", []) for i, pattern in enumerate(patterns)}
