"""The local Application manifests: loading, validation, and name lookup. Pure except for reading files.

Layout (see docs/argocd.md; `argocd` is the setting blumeops.argocd.dir):
    argocd/root.yaml              the root app-of-apps (its source path is argocd/apps)
    argocd/apps/<app>.yaml        one child Application per file
    argocd/manifests/<app>/       each child's manifests (a house rule, not a requirement)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blumeops_tasks import yaml_read

APP_API_VERSION = "argoproj.io/v1alpha1"
CHILD_FINALIZER = "resources-finalizer.argocd.argoproj.io"
ROOT_FILE = "root.yaml"
APPS_DIR = "apps"
MANIFESTS_DIR = "manifests"


@dataclass(frozen=True)
class LocalApp:
    """One Application manifest as committed."""

    name: str
    file: Path  # relative to the repo root
    doc: Mapping[str, Any]
    root: bool = False

    @property
    def sources(self) -> tuple[Mapping[str, Any], ...]:
        """`spec.sources` of a multi-source app, else the one `spec.source` (empty when neither)."""
        spec = self.doc.get("spec") or {}
        if not isinstance(spec, Mapping):
            return ()
        many = spec.get("sources")
        if isinstance(many, list) and many:
            return tuple(s for s in many if isinstance(s, Mapping))
        one = spec.get("source")
        return (one,) if isinstance(one, Mapping) else ()

    @property
    def multi_source(self) -> bool:
        return len(self.sources) > 1

    @property
    def source(self) -> Mapping[str, Any]:
        """The source whose path this repo holds: the first with a path, else the first."""
        with_path = [s for s in self.sources if s.get("path")]
        return with_path[0] if with_path else (self.sources[0] if self.sources else {})

    @property
    def path(self) -> str:
        return str(self.source.get("path") or "")

    @property
    def target_revision(self) -> str:
        return str(self.source.get("targetRevision") or "")

    @property
    def automated(self) -> bool:
        """Auto-sync as ArgoCD reads it (`automated: {}` on, `enabled: false` off)."""
        from blumeops_tasks.argocd.app_state import auto_sync_enabled

        return auto_sync_enabled(self.doc)


class ManifestError(Exception):
    """A manifest that cannot even be read as an Application."""


def load(repo: Path, argocd_dir: str = "argocd") -> list[LocalApp]:
    """The root Application then every child, sorted by name. Raises ManifestError on unreadable files."""
    import yaml

    base = repo / argocd_dir
    files: list[tuple[Path, bool]] = []
    if (base / ROOT_FILE).is_file():
        files.append((base / ROOT_FILE, True))
    files.extend((path, False) for path in sorted((base / APPS_DIR).glob("*.y*ml")))
    apps: list[LocalApp] = []
    for path, is_root in files:
        rel = path.relative_to(repo)
        try:
            docs = [d for d in yaml_read.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        except yaml.YAMLError as exc:
            raise ManifestError(f"{rel} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if len(docs) != 1 or not isinstance(docs[0], Mapping):
            raise ManifestError(f"{rel} must hold exactly one Application document")
        name = str((docs[0].get("metadata") or {}).get("name") or "")
        apps.append(LocalApp(name or rel.stem, rel, docs[0], root=is_root))
    return apps


def names(apps: Sequence[LocalApp]) -> tuple[str, ...]:
    return tuple(app.name for app in apps)


def find(apps: Sequence[LocalApp], name: str) -> LocalApp | None:
    return next((app for app in apps if app.name == name), None)


def unknown_app_message(name: str, known: Sequence[str]) -> str:
    """One sentence: the unknown name, the closest match, and every known app."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.4)
    hint = f" (closest: {match[0]})" if match else ""
    return f"No app named {name!r} in argocd/{hint}; known apps: {', '.join(sorted(known))}."


def _req(doc: Mapping[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


REQUIRED_FIELDS = ("apiVersion", "kind", "metadata.name", "metadata.namespace", "spec.project")


@dataclass(frozen=True)
class Findings:
    """Problems ArgoCD would trip on (failures) and breaches of our own conventions (house rules)."""

    failures: tuple[str, ...] = ()
    house: tuple[str, ...] = ()


def problems(app: LocalApp, *, repo: Path, repo_url: str, branch: str, namespace: str, manifests_root: str) -> Findings:
    """Everything wrong with one Application manifest, each sentence naming the app."""
    from blumeops_tasks.argocd.revisions import same_repo

    doc, where = app.doc, f"{app.name} ({app.file})"
    found: list[str] = []
    house: list[str] = []
    missing = [f for f in REQUIRED_FIELDS if _req(doc, f) in (None, "")]
    if not app.sources:
        missing.append("spec.source (or spec.sources)")
    destination = _req(doc, "spec.destination") or {}
    if not isinstance(destination, Mapping) or not (destination.get("server") or destination.get("name")):
        missing.append("spec.destination.server (or .name)")
    if missing:
        found.append(f"{where}: missing {', '.join(missing)}")
    if doc.get("apiVersion") not in (None, APP_API_VERSION) or doc.get("kind") not in (None, "Application"):
        found.append(f"{where}: must be kind Application, apiVersion {APP_API_VERSION}")
    meta_ns = _req(doc, "metadata.namespace")
    if meta_ns not in (None, namespace):
        found.append(f"{where}: metadata.namespace is {meta_ns!r}, expected the ArgoCD namespace {namespace!r}")
    for index, source in enumerate(app.sources):
        label = f"{where}: source {index + 1}" if app.multi_source else where
        url = str(source.get("repoURL") or "")
        if not url:
            found.append(f"{label}: missing repoURL")
        elif source.get("chart"):
            continue  # a chart from a Helm repository: its version is its targetRevision
        elif not same_repo(url, repo_url):
            found.append(f"{label}: repoURL {url!r} is not the configured repo {repo_url!r}")
            continue
        found.extend(_source_problems(source, label, repo, branch))
    house.extend(_house_rules(app, where, manifests_root))
    return Findings(tuple(found), tuple(house))


def _source_problems(source: Mapping[str, Any], where: str, repo: Path, branch: str) -> list[str]:
    """A source held in this repo: on the branch ArgoCD should read, at a path that exists."""
    found: list[str] = []
    rev = str(source.get("targetRevision") or "")
    if rev and rev not in (branch, "HEAD"):
        found.append(f"{where}: targetRevision is {rev!r}, not {branch!r} (left on a feature branch?)")
    path = str(source.get("path") or "")
    if not path and not source.get("ref"):
        found.append(f"{where}: missing path")
    elif path and (path.startswith("/") or ".." in Path(path).parts):
        found.append(f"{where}: source path {path!r} must be relative inside the repo")
    elif path and not (repo / path).is_dir():
        found.append(f"{where}: source path {path!r} does not exist in this repo")
    helm = source.get("helm") if isinstance(source.get("helm"), Mapping) else {}
    return found + [
        f"{where}: value file {entry!r} does not exist in this repo"
        for entry in (helm or {}).get("valueFiles") or []
        if str(entry).startswith("$") and not (repo / str(entry).partition("/")[2]).is_file()
    ]


def _house_rules(app: LocalApp, where: str, manifests_root: str) -> list[str]:
    """Our conventions (docs/argocd.md): warnings unless blumeops.lint.strict."""
    if app.root:
        return []
    found: list[str] = []
    if app.file.stem != app.name:
        found.append(f"{where}: file name is not the app name ({app.name}.yaml)")
    if app.path and not app.multi_source and Path(app.path).parent.as_posix() != manifests_root:
        found.append(f"{where}: source path {app.path!r} is not {manifests_root}/<app>")
    if CHILD_FINALIZER not in (_req(app.doc, "metadata.finalizers") or []):
        found.append(f"{where}: no finalizer {CHILD_FINALIZER} (deleting the app would leave its workloads)")
    if "CreateNamespace=true" not in (_req(app.doc, "spec.syncPolicy.syncOptions") or []):
        found.append(f"{where}: no syncPolicy.syncOptions CreateNamespace=true (namespace per app)")
    return found


def pairing_problems(apps: Sequence[LocalApp], repo: Path, manifests_root: str) -> Findings:
    """No two apps share a name (failure); every manifests directory has an Application (house rule:
    a shared base or component may live there too)."""
    found: list[str] = []
    seen: dict[str, Path] = {}
    for app in apps:
        if app.name in seen:
            found.append(f"app name {app.name!r} is used by both {seen[app.name]} and {app.file}")
        seen[app.name] = app.file
    claimed = {str(s.get("path") or "").rstrip("/") for app in apps if not app.root for s in app.sources}
    base = repo / manifests_root
    dirs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    house = [
        f"{rel} has no Application (add one, or keep shared bases elsewhere)"
        for rel in (d.relative_to(repo).as_posix() for d in dirs)
        if rel not in claimed
    ]
    return Findings(tuple(found), tuple(house))
