"""Which layer and target a changed file belongs to, and the exact commands that apply it.

Target shapes (only for paths inside the layer's own `paths`):

    roles/<role>/...                   hosts using the role (via playbooks/*.yml) -> --host=H --tags ROLE
    playbooks/<play>.yml               the play's hosts                             -> --host=H
    inventory/host_vars/<h>[.yml|/..]  that host                                    -> --host=H
    inventory/group_vars/<g>[.yml|/..] the group's hosts (group `all`: whole layer)
    argocd/...                         the Application whose source path holds it   -> --app=APP
    anything else in a layer           the whole layer                              -> inv <apply_task>

`HostsIndex` and `ArgoIndex` are plain data read from the repo's YAML (readers at the bottom);
`map_paths` and `commands` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from blumeops_tasks.gitops.git_state import path_in


@dataclass(frozen=True)
class LayerInfo:
    name: str
    paths: tuple[str, ...]
    apply_task: str


@dataclass(frozen=True)
class HostsIndex:
    role_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # role -> host patterns
    playbook_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # file -> host patterns
    group_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> hosts


@dataclass(frozen=True)
class ArgoIndex:
    app_paths: Mapping[str, str] = field(default_factory=dict)  # source path (no trailing /) -> app
    manifests: frozenset[str] = frozenset()  # files holding an Application, relative to the repo


@dataclass(frozen=True)
class Hit:
    """One changed file: its layer (None: no layer owns it) and target."""

    path: str
    layer: str | None
    kind: str  # "host", "role", "app", "layer", "unmapped", "unmanaged"
    target: str  # host, role or app name; "" for the whole layer
    hosts: tuple[str, ...] = ()  # for roles: the hosts whose playbooks use it
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "layer": self.layer,
            "kind": self.kind,
            "target": self.target,
            "hosts": list(self.hosts),
            "note": self.note,
        }


# ---- pure mapping -------------------------------------------------------------------------------


def map_path(path: str, layers: Sequence[LayerInfo], hosts: HostsIndex, argo: ArgoIndex) -> Hit:
    for layer in layers:
        if not path_in(path, layer.paths):
            continue
        if layer.name == "hosts":
            return _hosts_hit(path, hosts)
        if layer.name == "argocd":
            return _argocd_hit(path, argo)
        return Hit(path, layer.name, "layer", "")
    return Hit(path, None, "unmanaged", "")


def _stem(name: str) -> str:
    for suffix in (".yml", ".yaml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _hosts_hit(path: str, index: HostsIndex) -> Hit:
    parts = PurePosixPath(path).parts
    if len(parts) >= 3 and parts[0] == "roles":
        role = parts[1]
        users = index.role_hosts.get(role, ())
        note = "" if users else "no playbook uses this role"
        return Hit(path, "hosts", "role", role, users, note)
    if len(parts) == 2 and parts[0] == "playbooks" and path in index.playbook_hosts:
        return Hit(path, "hosts", "host", ",".join(index.playbook_hosts[path]), index.playbook_hosts[path])
    if len(parts) >= 3 and parts[:2] == ("inventory", "host_vars"):
        host = _stem(parts[2])
        return Hit(path, "hosts", "host", host, (host,))
    if len(parts) >= 3 and parts[:2] == ("inventory", "group_vars"):
        group = _stem(parts[2])
        members = index.group_hosts.get(group, ())
        if group != "all" and members:
            return Hit(path, "hosts", "host", group, members, f"group {group}")
    return Hit(path, "hosts", "layer", "")


def _argocd_hit(path: str, index: ArgoIndex) -> Hit:
    best = ""
    for source in index.app_paths:
        if path.startswith(source + "/") and len(source) > len(best):
            best = source
    if best:
        return Hit(path, "argocd", "app", index.app_paths[best])
    if path in index.manifests:
        return Hit(path, "argocd", "layer", "", note=f"outside every source path: kubectl apply -f {path}")
    parts = PurePosixPath(path).parts
    if len(parts) >= 4:  # argocd/<group>/<app>/<file>: the directory is the app
        return Hit(path, "argocd", "app", parts[2], note="by directory name (no Application source path)")
    return Hit(path, "argocd", "layer", "")


def map_paths(paths: Iterable[str], layers: Sequence[LayerInfo], hosts: HostsIndex, argo: ArgoIndex) -> list[Hit]:
    return [map_path(path, layers, hosts, argo) for path in sorted(dict.fromkeys(paths))]


def commands(hits: Sequence[Hit], layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    """Per layer (in registry order), the commands that apply every hit, narrowest that covers all."""
    result: dict[str, list[str]] = {}
    for layer in layers:
        mine = [hit for hit in hits if hit.layer == layer.name]
        if not mine:
            continue
        base = f"inv {layer.apply_task}"
        if any(hit.kind == "layer" for hit in mine):
            result[layer.name] = [base]
        elif layer.name == "hosts":
            result[layer.name] = _host_commands(base, mine)
        elif layer.name == "argocd":
            apps = sorted({hit.target for hit in mine if hit.kind == "app"})
            result[layer.name] = [f"{base} --app={app}" for app in apps]
        else:
            result[layer.name] = [base]
    return result


def _host_commands(base: str, hits: Sequence[Hit]) -> list[str]:
    # host -> None (every tag) or the set of role tags
    scope: dict[str, set[str] | None] = {}
    for hit in hits:
        if hit.kind == "host":
            for host in hit.hosts:
                scope[host] = None
    for hit in hits:
        if hit.kind == "role":
            for host in hit.hosts:
                if host in scope and scope[host] is None:
                    continue
                tags = scope.setdefault(host, set())
                assert tags is not None
                tags.add(hit.target)
    lines = []
    for host in sorted(scope):
        tags = scope[host]
        line = f"{base} --host={host}"
        if tags:
            line += f" --tags {','.join(sorted(tags))}"
        lines.append(line)
    return lines


# ---- readers (YAML in the work tree) ------------------------------------------------------------


def _load_yaml_docs(path: Path) -> list[Any]:
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, yaml.YAMLError):
        return []


def _role_name(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, Mapping):
        name = entry.get("role") or entry.get("name")
        return str(name) if name else None
    return None


def _host_patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.replace(":", ",").split(",") if p.strip())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _role_dependencies(root: Path) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for meta in sorted(root.glob("roles/*/meta/main.y*ml")):
        role = meta.parent.parent.name
        for doc in _load_yaml_docs(meta):
            if isinstance(doc, Mapping):
                for dep in doc.get("dependencies") or []:
                    name = _role_name(dep)
                    if name:
                        deps.setdefault(role, set()).add(name)
    return deps


def _groups(node: Any, name: str, out: dict[str, set[str]]) -> set[str]:
    """Hosts under an inventory group node (YAML inventory format), recording every group."""
    members: set[str] = set()
    if isinstance(node, Mapping):
        members.update(str(h) for h in (node.get("hosts") or {}))
        for child, sub in (node.get("children") or {}).items():
            members |= _groups(sub, str(child), out)
    out.setdefault(name, set()).update(members)
    return members


def _plays(root: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(playbook file relative to root, play) for every play with `hosts`."""
    for playbook in sorted(root.glob("playbooks/*.y*ml")):
        rel = playbook.relative_to(root).as_posix()
        for doc in _load_yaml_docs(playbook):
            for play in doc if isinstance(doc, list) else []:
                if isinstance(play, Mapping) and "hosts" in play:
                    yield rel, play


def _spread_dependencies(role_hosts: dict[str, set[str]], deps: Mapping[str, set[str]]) -> None:
    """A role used as a dependency reaches the hosts of the roles that depend on it."""
    changed = True
    while changed:
        changed = False
        for role, needs in deps.items():
            for need in needs:
                before = len(role_hosts.get(need, set()))
                role_hosts.setdefault(need, set()).update(role_hosts.get(role, set()))
                changed |= len(role_hosts[need]) != before


def read_hosts_index(root: Path) -> HostsIndex:
    role_hosts: dict[str, set[str]] = {}
    playbook_hosts: dict[str, list[str]] = {}
    for rel, play in _plays(root):
        patterns = _host_patterns(play.get("hosts"))
        playbook_hosts.setdefault(rel, []).extend(patterns)
        for entry in play.get("roles") or []:
            name = _role_name(entry)
            if name:
                role_hosts.setdefault(name, set()).update(patterns)
    _spread_dependencies(role_hosts, _role_dependencies(root))
    group_hosts: dict[str, set[str]] = {}
    for inventory in sorted(root.glob("inventory/*.y*ml")):
        for doc in _load_yaml_docs(inventory):
            if isinstance(doc, Mapping):
                for group, node in doc.items():
                    _groups(node, str(group), group_hosts)
    return HostsIndex(
        {role: tuple(sorted(hosts)) for role, hosts in role_hosts.items() if hosts},
        {rel: tuple(dict.fromkeys(hosts)) for rel, hosts in playbook_hosts.items() if hosts},
        {group: tuple(sorted(hosts)) for group, hosts in group_hosts.items()},
    )


def read_argo_index(root: Path, base: str = "argocd") -> ArgoIndex:
    """Application manifests under `base`: each source path inside the repo -> the app's name."""
    app_paths: dict[str, str] = {}
    manifests: set[str] = set()
    for manifest in sorted((root / base).rglob("*.y*ml")) if (root / base).is_dir() else []:
        for doc in _load_yaml_docs(manifest):
            if not isinstance(doc, Mapping) or doc.get("kind") != "Application":
                continue
            manifests.add(manifest.relative_to(root).as_posix())
            name = str((doc.get("metadata") or {}).get("name") or "")
            spec = doc.get("spec") or {}
            sources = [spec.get("source"), *list(spec.get("sources") or [])]
            for source in sources:
                if isinstance(source, Mapping) and source.get("path") and name:
                    path = str(source["path"]).strip("/")
                    if path_in(path + "/", (base + "/",)):
                        app_paths[path] = name
    return ArgoIndex(app_paths, frozenset(manifests))
