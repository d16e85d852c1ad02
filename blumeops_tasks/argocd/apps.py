"""The local Application manifests: loading, validation, and name lookup. Pure except for reading files.

Layout (see docs/argocd.md):
    argocd/root.yaml              the root app-of-apps (its source path is argocd/apps)
    argocd/apps/<app>.yaml        one child Application per file
    argocd/manifests/<app>/       each child's manifests, a kustomize directory
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    def source(self) -> Mapping[str, Any]:
        spec = self.doc.get("spec") or {}
        source = spec.get("source") if isinstance(spec, Mapping) else None
        return source if isinstance(source, Mapping) else {}

    @property
    def path(self) -> str:
        return str(self.source.get("path") or "")

    @property
    def target_revision(self) -> str:
        return str(self.source.get("targetRevision") or "")

    @property
    def automated(self) -> bool:
        policy = (self.doc.get("spec") or {}).get("syncPolicy") or {}
        return isinstance(policy, Mapping) and bool(policy.get("automated"))


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
            docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
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


REQUIRED_FIELDS = (
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "spec.project",
    "spec.source.repoURL",
    "spec.source.path",
    "spec.source.targetRevision",
    "spec.destination.server",
    "spec.destination.namespace",
)


def problems(
    app: LocalApp, *, repo: Path, repo_url: str, branch: str, namespace: str, manifests_root: str
) -> list[str]:
    """Every problem with one Application manifest, each naming the app; empty when sound."""
    doc, where = app.doc, f"{app.name} ({app.file})"
    found: list[str] = []
    missing = [f for f in REQUIRED_FIELDS if _req(doc, f) in (None, "")]
    if missing:
        found.append(f"{where}: missing {', '.join(missing)}")
    if doc.get("apiVersion") not in (None, APP_API_VERSION) or doc.get("kind") not in (None, "Application"):
        found.append(f"{where}: must be kind Application, apiVersion {APP_API_VERSION}")
    meta_ns = _req(doc, "metadata.namespace")
    if meta_ns not in (None, namespace):
        found.append(f"{where}: metadata.namespace is {meta_ns!r}, expected the ArgoCD namespace {namespace!r}")
    if app.file.stem != app.name and not app.root:
        found.append(f"{where}: file name must be the app name ({app.name}.yaml)")
    url = _req(doc, "spec.source.repoURL")
    if url not in (None, "") and url != repo_url:
        found.append(f"{where}: repoURL {url!r} is not the configured repo {repo_url!r}")
    found.extend(_source_problems(app, where, repo, branch, manifests_root))
    return found


def _source_problems(app: LocalApp, where: str, repo: Path, branch: str, manifests_root: str) -> list[str]:
    """targetRevision, path, finalizer and namespace creation."""
    doc = app.doc
    found: list[str] = []
    rev = app.target_revision
    if rev and rev != branch:
        found.append(f"{where}: targetRevision is {rev!r}, not {branch!r} (left on a feature branch?)")
    path = app.path
    if path:
        if path.startswith("/") or ".." in Path(path).parts:
            found.append(f"{where}: source path {path!r} must be relative inside the repo")
        elif not (repo / path).is_dir():
            found.append(f"{where}: source path {path!r} does not exist in this repo")
        elif not app.root and Path(path).parent.as_posix() != manifests_root:
            found.append(f"{where}: source path {path!r} must be {manifests_root}/<app>")
    finalizers = _req(doc, "metadata.finalizers") or []
    if not app.root and CHILD_FINALIZER not in finalizers:
        found.append(f"{where}: child apps need the finalizer {CHILD_FINALIZER}")
    if not app.root:
        options = _req(doc, "spec.syncPolicy.syncOptions") or []
        if "CreateNamespace=true" not in options:
            found.append(f"{where}: syncPolicy.syncOptions needs CreateNamespace=true (namespace per app)")
    return found


def pairing_problems(apps: Sequence[LocalApp], repo: Path, manifests_root: str) -> list[str]:
    """Every manifests directory has an Application, every Application a directory, no duplicates."""
    found: list[str] = []
    seen: dict[str, Path] = {}
    for app in apps:
        if app.name in seen:
            found.append(f"app name {app.name!r} is used by both {seen[app.name]} and {app.file}")
        seen[app.name] = app.file
    claimed = {app.path.rstrip("/") for app in apps if not app.root}
    base = repo / manifests_root
    dirs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    for directory in dirs:
        rel = directory.relative_to(repo).as_posix()
        if rel not in claimed:
            found.append(f"{rel} has no Application in argocd/{APPS_DIR}/ (add {directory.name}.yaml)")
    for app in apps:
        if not app.root and app.path and not (repo / app.path).is_dir():
            found.append(f"{app.name} has no manifests directory ({app.path})")
    return found
