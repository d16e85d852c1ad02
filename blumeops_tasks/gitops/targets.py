"""Which layer and target a changed file belongs to, and the exact commands that apply it.

Target shapes (only for paths inside the layer's own `paths`; the hosts directories are the
configured ones, `roles/`, `playbooks/`, `inventory/` by default):

    roles/<role>/...                   hosts whose plays run the role               -> --host=H --tags ROLE
    playbooks/<play>.yml               the hosts its plays target (default: layer)  -> --host=H
    inventory/host_vars/<h>[.yml|/..]  that host                                    -> --host=H
    inventory/group_vars/<g>[.yml|/..] the group's hosts (group `all`: whole layer)
    argocd/...                         the Application whose source path holds it   -> --app=APP
    anything else in a layer           the whole layer                              -> inv <apply_task>

`--host=H` picks H's own playbook (<playbooks>/H.yml); a host without one gets `--limit=H` (the
default playbook, narrowed). Which hosts a play, role or group reaches is Ansible's answer
(`ansible-playbook --list-hosts --list-tasks`, read by `read_hosts_index`), never our reading of a
pattern; `ArgoIndex` is read from the repo's YAML. `map_paths` and `commands` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from blumeops_tasks import yaml_read
from blumeops_tasks.gitops.git_state import path_in

if TYPE_CHECKING:
    from invoke.context import Context


@dataclass(frozen=True)
class LayerInfo:
    name: str
    paths: tuple[str, ...]
    apply_task: str


@dataclass(frozen=True)
class HostsIndex:
    """Hosts as Ansible targets them, and where the hosts layer's files live (repo-relative)."""

    role_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # role -> hosts its plays target
    playbook_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # file -> hosts its plays target
    group_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> hosts
    hosts: frozenset[str] = frozenset()  # every inventory host
    host_playbooks: frozenset[str] = frozenset()  # hosts with a playbook of their own (<playbooks>/<host>.yml)
    roles_dir: str = "roles"
    playbooks_dir: str = "playbooks"
    inventory_dir: str = "inventory"
    default_playbook: str = "playbooks/site.yml"
    error: str = ""  # Ansible could not list the playbooks or the inventory: every change is the whole layer


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


def _below(path: str, directory: str) -> tuple[str, ...] | None:
    """The parts of `path` below `directory` (None when it is not below it)."""
    parts, base = PurePosixPath(path).parts, PurePosixPath(directory).parts
    return parts[len(base) :] if parts[: len(base)] == base and len(parts) > len(base) else None


def _hosts_hit(path: str, index: HostsIndex) -> Hit:  # noqa: PLR0911  # one return per target shape
    if index.error:
        return Hit(path, "hosts", "layer", "", note=index.error)
    role = _below(path, index.roles_dir)
    if role is not None and len(role) >= 2:
        users = index.role_hosts.get(role[0], ())
        return Hit(path, "hosts", "role", role[0], users, "" if users else "no play runs this role")
    book = _below(path, index.playbooks_dir)
    if book is not None and len(book) == 1 and path in index.playbook_hosts and path != index.default_playbook:
        hosts = index.playbook_hosts[path]
        return Hit(path, "hosts", "host", ",".join(hosts), hosts, "" if hosts else "its plays target no host")
    below = _below(path, index.inventory_dir)
    if below is not None and len(below) >= 2 and below[0] == "host_vars":
        host = _stem(below[1])
        if host in index.hosts:
            return Hit(path, "hosts", "host", host, (host,))
        return Hit(path, "hosts", "host", host, (), f"{host} is not an inventory host")
    if below is not None and len(below) >= 2 and below[0] == "group_vars":
        group = _stem(below[1])
        members = index.group_hosts.get(group, ())
        if group != "all" and members:
            return Hit(path, "hosts", "host", group, members, f"group {group}")
    return Hit(path, "hosts", "layer", "")


def _argocd_hit(path: str, index: ArgoIndex) -> Hit:
    best = ""
    for source in index.app_paths:
        if (path == source or path.startswith(source + "/")) and len(source) > len(best):
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


def commands(
    hits: Sequence[Hit], layers: Sequence[LayerInfo], hosts_index: HostsIndex | None = None
) -> dict[str, list[str]]:
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
            own = hosts_index.host_playbooks if hosts_index is not None else frozenset()
            result[layer.name] = _host_commands(base, mine, own)
        elif layer.name == "argocd":
            apps = sorted({hit.target for hit in mine if hit.kind == "app"})
            result[layer.name] = [f"{base} --app={app}" for app in apps]
        else:
            result[layer.name] = [base]
    return result


def _host_commands(base: str, hits: Sequence[Hit], host_playbooks: frozenset[str]) -> list[str]:
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
    limited: dict[str, list[str]] = {}  # the same tags for hosts without a playbook of their own: one --limit
    for host in sorted(scope):
        joined = ",".join(sorted(scope[host] or ()))
        if host in host_playbooks:
            lines.append(f"{base} --host={host}" + (f" --tags {joined}" if joined else ""))
        else:
            limited.setdefault(joined, []).append(host)
    for joined, hosts in sorted(limited.items()):
        lines.append(f"{base} --limit={','.join(hosts)}" + (f" --tags {joined}" if joined else ""))
    return lines


# ---- readers --------------------------------------------------------------------------------------


def _load_yaml_docs(path: Path) -> list[Any]:
    import yaml

    try:
        return [doc for doc in yaml_read.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, yaml.YAMLError):
        return []


def _declared_roles(books: Iterable[Path]) -> Iterable[tuple[str, str, list[str]]]:
    """(play name, hosts pattern, roles in `roles:`) of each play written in the playbooks, the name
    and pattern as ansible-playbook's listing prints them (an unnamed play is named by its pattern)."""
    for book in books:
        for doc in _load_yaml_docs(book):
            for play in doc if isinstance(doc, list) else []:
                if not isinstance(play, Mapping) or "hosts" not in play:
                    continue
                hosts = play["hosts"]
                pattern = ",".join(map(str, hosts)) if isinstance(hosts, list) else str(hosts)
                entries = [
                    e if isinstance(e, str) else (e or {}).get("role") or (e or {}).get("name")
                    for e in play.get("roles") or []
                ]
                yield str(play.get("name") or pattern), pattern, [str(e) for e in entries if e]


def hosts_index_for(c: Context, paths: Iterable[str], layers: Sequence[LayerInfo]) -> HostsIndex:
    """The hosts index when a path is in the hosts layer (asking Ansible costs a second or two), else empty."""
    owned = next((layer.paths for layer in layers if layer.name == "hosts"), ())
    return read_hosts_index(c) if any(path_in(path, owned) for path in paths) else HostsIndex()


def read_hosts_index(c: Context) -> HostsIndex:
    """The hosts layer's index, from Ansible's listing of every playbook and of every inventory group."""
    from blumeops_tasks.hosts import ask, house_rules
    from blumeops_tasks.hosts.inventory import ProjectError, playbook_for, playbooks
    from blumeops_tasks.hosts.project import load_inventory, project

    p = project(c)

    def rel(path: Path) -> str:
        try:
            return path.resolve().relative_to(p.root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    inventory_dir = p.inventory if p.inventory.is_dir() else p.inventory.parent
    books = playbooks(p.playbooks)
    try:
        default = rel(playbook_for(p.playbooks, None, p.default_playbook))
    except ProjectError:
        default = ""
    layout = HostsIndex(
        roles_dir=rel(p.roles),
        playbooks_dir=rel(p.playbooks),
        inventory_dir=rel(inventory_dir),
        default_playbook=default,
    )
    try:
        plays = ask.listing(c, p, books) if books else []
        inv = load_inventory(c, p)
        group_hosts = ask.hosts_for(c, p, sorted(inv.groups))
    except ProjectError as exc:
        return replace(layout, error=f"Ansible cannot list the hosts: {exc}")
    known_roles = set(house_rules.roles(p.roles))
    role_hosts: dict[str, dict[str, None]] = {}
    playbook_hosts: dict[str, dict[str, None]] = {}
    by_play: dict[tuple[str, str], dict[str, None]] = {}  # (name, pattern) as Ansible prints them -> hosts
    for play in plays:
        playbook_hosts.setdefault(rel(p.root / play.playbook), {}).update(dict.fromkeys(play.hosts))
        by_play.setdefault((play.name, play.pattern), {}).update(dict.fromkeys(play.hosts))
        for role in play.roles(known_roles):
            role_hosts.setdefault(role, {}).update(dict.fromkeys(play.hosts))
    # A role a play names but that lists no task (only defaults, vars or handlers) still reaches the
    # hosts Ansible lists for that play.
    for name, pattern, roles in _declared_roles(books):
        for role in roles:
            role_hosts.setdefault(role, {}).update(by_play.get((name, pattern), {}))
    return replace(
        layout,
        role_hosts={role: tuple(sorted(hosts)) for role, hosts in role_hosts.items()},
        playbook_hosts={book: tuple(hosts) for book, hosts in playbook_hosts.items()},
        group_hosts={group: tuple(sorted(hosts)) for group, hosts in group_hosts.items()},
        hosts=frozenset(inv.hosts),
        host_playbooks=frozenset(h for h in inv.hosts if any(b.stem == h for b in books)),
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
            sources = [s for s in (spec.get("source"), *list(spec.get("sources") or [])) if isinstance(s, Mapping)]
            for path in source_paths(sources) if name else []:
                if path_in(path + "/", (base + "/",)):
                    app_paths[path] = name
    return ArgoIndex(app_paths, frozenset(manifests))


def source_paths(sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """The repo paths an Application's sources read: each source's `path`, and each Helm value file
    named through a `ref` source (`$values/argocd/values/grafana.yaml` with a source `ref: values`)."""
    refs = {str(s["ref"]) for s in sources if s.get("ref")}
    paths = [str(s["path"]).strip("/") for s in sources if s.get("path")]
    for source in sources:
        helm = source.get("helm")
        for value_file in (helm.get("valueFiles") or []) if isinstance(helm, Mapping) else []:
            ref, _, rest = str(value_file).partition("/")
            if ref.startswith("$") and ref[1:] in refs and rest:
                paths.append(rest.strip("/"))
    return paths
