"""A host defined twice in the inventory: Ansible merges silently, `inv check` names both places.

Two ambiguities, both as Ansible reports them:
- a key twice in one YAML file (`indri:` twice under a group): Ansible's YAML loader warns "Found
  duplicate mapping key" with the place of the second one and keeps only it; we name that place
  and the first definition above it (same key, same column);
- a host in two inventory sources (files of an inventory directory) whose variables differ: each
  source is listed by `ansible-inventory -i SOURCE --list` (the sources are the files Ansible says
  it parsed, `-vvv`), and a variable with different values in two of them is named with both
  files and the one Ansible's merged inventory took. Values are never printed (they may be secret).

Both answers are cached on the inventory's fingerprint, like the inventory itself.
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
from blumeops_tasks.hosts.inventory import Inventory
from blumeops_tasks.hosts.project import Project, base_env

_DUPLICATE_KEY = re.compile(
    r"Found duplicate mapping key '(?P<key>[^']*)'\.?\s*Origin: (?P<file>.+?):(?P<line>\d+):(?P<col>\d+)"
)
_PARSED = re.compile(r"^Parsed (?P<source>.+) inventory source with \S+ plugin$", re.M)


@dataclass(frozen=True)
class DuplicateKey:
    key: str
    file: str
    line: int  # the definition Ansible keeps (1-based)
    column: int
    first_line: int = 0  # the earlier definition it silently drops; 0 when not found

    def sentence(self, rel: Any = str) -> str:
        where = rel(Path(self.file))
        first = f"line {self.first_line} and " if self.first_line else ""
        kept = f"Ansible keeps only line {self.line}"
        return f"{self.key!r} is defined twice in {where} ({first}line {self.line}; {kept})"


def duplicate_keys(stderr: str) -> list[DuplicateKey]:
    """Ansible's "Found duplicate mapping key" warnings, each with the place it names."""
    found = []
    for match in _DUPLICATE_KEY.finditer(stderr):
        found.append(DuplicateKey(match["key"], match["file"].strip(), int(match["line"]), int(match["col"])))
    return list(dict.fromkeys(found))


def first_definition(text: str, key: str, line: int, column: int) -> int:
    """The line (1-based) of the earlier `key:` at the same column, above `line`, in the same mapping."""
    lines = text.splitlines()
    indent = column - 1
    for number in range(min(line - 1, len(lines)), 0, -1):
        content = lines[number - 1]
        stripped = content.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current = len(content) - len(content.lstrip(" "))
        if current < indent:
            return 0  # left the mapping
        if current == indent and re.match(rf"""['"]?{re.escape(key)}['"]?\s*:""", stripped):
            return number
    return 0


def with_first_lines(found: list[DuplicateKey]) -> list[DuplicateKey]:
    located = []
    for dup in found:
        try:
            text = Path(dup.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            located.append(dup)
            continue
        first = first_definition(text, dup.key, dup.line, dup.column)
        located.append(DuplicateKey(dup.key, dup.file, dup.line, dup.column, first))
    return located


def sources(verbose_stdout: str) -> list[str]:
    """The inventory sources Ansible parsed, from `ansible-inventory -vvv`."""
    return list(dict.fromkeys(m["source"].strip() for m in _PARSED.finditer(verbose_stdout)))


def conflicts(per_source: dict[str, Inventory], merged: Inventory, rel: Any = str) -> list[str]:
    """A host in two sources with a variable whose values differ: one sentence per host (names only)."""
    found = []
    hosts = dict.fromkeys(h for inv in per_source.values() for h in inv.hosts)
    for host in hosts:
        defined = {source: inv.hostvars[host] for source, inv in per_source.items() if host in inv.hostvars}
        if len(defined) < 2:
            continue
        names = sorted(
            {name for a in defined.values() for b in defined.values() for name in set(a) & set(b) if a[name] != b[name]}
        )
        if not names:
            continue
        winner = merged.hostvars.get(host, {})
        kept = [s for s, hv in defined.items() if all(hv.get(n) == winner.get(n) for n in names)]
        places = " and ".join(rel(Path(s)) for s in defined)
        took = f"; Ansible silently uses {rel(Path(kept[-1]))}'s" if kept else ""
        found.append(f"host {host} is defined in {places} with different {', '.join(names)}{took}")
    return found


def _inventory_call(c: Context, p: Project, source: Path, *args: str) -> Any:
    command = shlex.join([p.ansible_inventory, "-i", str(source), *args])
    return shell.run(c, f"cd {shlex.quote(str(p.root))} && {command}", env=base_env(p), hide=True, warn=True)


def findings(c: Context, p: Project, merged: Inventory) -> list[str]:
    """Every duplicate definition in the inventory, one sentence each (cached on its files)."""
    from blumeops_tasks.hosts import cache

    key = cache.fingerprint([p.inventory, p.config], extra=[p.ansible_inventory, str(p.inventory)])
    if p.cache_dir is not None and (cached := cache.get(p.cache_dir, "inventory-duplicates", key)) is not None:
        return [str(s) for s in cached]
    listed = _inventory_call(c, p, p.inventory, "--graph", "-vvv")
    if listed.exited != 0:
        return []  # the inventory check itself reports Ansible's error
    found = [dup.sentence(p.rel) for dup in with_first_lines(duplicate_keys(listed.stderr + listed.stdout))]
    parsed = sources(listed.stdout)
    if len(parsed) > 1:
        per_source: dict[str, Inventory] = {}
        for source in parsed:
            result = _inventory_call(c, p, Path(source), "--list")
            if result.exited != 0:
                continue
            try:
                per_source[source] = Inventory.from_list_json(json.loads(result.stdout))
            except ValueError:
                continue
        found += conflicts(per_source, merged, p.rel)
    if p.cache_dir is not None:
        cache.put(p.cache_dir, "inventory-duplicates", key, found)
    return found
