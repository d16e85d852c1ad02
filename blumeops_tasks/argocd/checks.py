"""The argocd layer's checks and plan: offline checks of argocd/, preflight of the operator's
cluster access, and the read-only plan. Loaded when `inv check/preflight/plan` run, not by `inv --list`.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks.argocd import flows
from blumeops_tasks.config import lint_strict, repo_root, setting
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, house_rule, ok, skipped, warn

NAME = "argocd"


def _cfg(c: Context, key: str) -> Any:
    return setting(c, f"{NAME}.{key}")


# --- offline checks -------------------------------------------------------------------------


def _findings_check(findings: Any, detail: str, strict: bool) -> Callable[[], Outcome]:
    def run() -> Outcome:
        if findings.failures:
            return failed("; ".join(findings.failures), "fix the Application manifest as described")
        if findings.house:
            return house_rule(strict, "; ".join(findings.house), "docs/argocd.md explains the house rules")
        return ok(detail)

    return run


class RepoRender:
    """The apps to check, rendered once by the tools that own their files (per-app checks share it).

    The per-app checks run concurrently; the first to ask renders every app to check (each with its
    own tool subprocess, in parallel). A custom resource is validated against a CRD found in any
    app's render: when only some apps are checked (`inv check --changed`), the other apps are
    rendered for their CRDs only if a checked object needs one.
    """

    def __init__(self, c: Context, local: list[Any], repo: Path, only: set[str] | None = None) -> None:
        self.c = c
        self.local = local
        self.repo = repo
        self.checked = [app for app in local if only is None or app.name in only]
        self._lock = threading.Lock()
        self._results: dict[str, Any] | None = None
        self._crds: Any = None
        self._complete = only is None
        self._tree_lock = threading.Lock()
        self._tree: str | None = None
        self._validated: dict[str, Any] = {}  # app -> its validation against the built-in schemas (workers)

    def validation(self, name: str, objects: Any, kube_version: str) -> Any:
        """The app's validation: a worker's, unless it left kinds with no built-in schema (those need
        the CRDs of every app), else validated here."""
        from blumeops_tasks.argocd import schemas

        done = self._validated.get(name)
        if done is not None and not done.unchecked:
            return done
        return schemas.validate(objects, kube_version, self.crds(objects, kube_version))

    def _render_one(self, app: Any) -> Any:
        from blumeops_tasks.argocd import render

        return render.render_cached(self.c, app, self.repo, str(_cfg(self.c, "repo_url")), self.tree())

    def tree(self) -> str:
        """The content digest of the argocd tree, computed once (the render cache's key)."""
        from blumeops_tasks.argocd import render

        with self._tree_lock:
            if self._tree is None:
                self._tree = render.tree_digest(self.c, self.repo)
            return self._tree

    def _render(self, apps: list[Any]) -> list[Any]:
        """Each app's render: from the cache, else by its tool, in threads or (many renders to do)
        in worker processes."""
        from concurrent.futures import ThreadPoolExecutor

        from blumeops_tasks.argocd import render

        done = {app.name: render.cached_render(self.c, app, self.tree()) for app in apps}
        missing = [app for app in apps if done[app.name] is None]
        workers = pool_workers(len(missing))
        if workers:
            fresh = self._render_in_processes(missing, workers)
        else:
            with ThreadPoolExecutor(max_workers=4) as pool:
                fresh = list(pool.map(self._render_one, missing))
        done.update({app.name: result for app, result in zip(missing, fresh, strict=True)})
        return [done[app.name] for app in apps]

    def _render_in_processes(self, apps: list[Any], workers: int) -> list[Any]:
        """Render and validate in worker processes: validation is pure Python and holds the GIL, so
        threads share one core for it. Each worker loads the schemas once."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from blumeops_tasks.argocd import render
        from blumeops_tasks.config import state_dir

        settings = {
            "root": str(self.repo),
            "state_dir": str(state_dir(self.c)),
            "argocd": {key: _cfg(self.c, key) for key in ("dir", "kustomize", "repo_url", "kube_version")},
        }
        kube_version = str(_cfg(self.c, "kube_version"))
        jobs = [(settings, app, str(self.repo), kube_version, self.tree()) for app in apps]
        context = multiprocessing.get_context("spawn")  # never fork a process that runs check threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            done = list(pool.map(render.render_and_validate, jobs, chunksize=max(1, len(jobs) // (workers * 4))))
        for app, (_result, validation) in zip(apps, done, strict=True):
            if validation is not None:
                self._validated[app.name] = validation
        return [result for result, _validation in done]

    def results(self) -> tuple[dict[str, Any], Any]:
        """Each checked app's render (or its RenderError), and the CRDs found in them."""
        from blumeops_tasks.argocd import render, schemas

        with self._lock:
            if self._results is None:
                rendered = self._render(self.checked)
                self._results = {app.name: r for app, r in zip(self.checked, rendered, strict=True)}
                self._crds = schemas.CrdIndex.from_objects(
                    obj for r in rendered if isinstance(r, render.Rendered) for obj in r.objects
                )
            return self._results, self._crds

    def crds(self, objects: Any, kube_version: str) -> Any:
        """The CRD index for these objects: the checked apps' CRDs, plus every other app's when an
        object has neither a built-in schema nor a CRD among the checked apps."""
        from blumeops_tasks.argocd import render, schemas

        self.results()
        with self._lock:
            if not self._complete and any(schemas.needs_crd(obj, kube_version, self._crds) for obj in objects):
                others = [app for app in self.local if app not in self.checked]
                more = [obj for r in self._render(others) if isinstance(r, render.Rendered) for obj in r.objects]
                self._crds = schemas.CrdIndex({**self._crds.schemas, **schemas.CrdIndex.from_objects(more).schemas})
                self._complete = True
            return self._crds


# Renders to do (apps not in the render cache) from which rendering and validation run in worker
# processes. Measured with bench/argocd_pool.py on 2 CPUs (docs/performance.md): processes lose at 40
# and 120 cold renders (+33 %, +36 %: each worker starts an interpreter and loads the schemas again)
# and win at 300 (-21 %); cached renders (validation only) are faster in threads at every size.
POOL_MIN_APPS = 240
POOL_MAX_WORKERS = 4


def pool_workers(apps: int) -> int:
    """Worker processes for `apps` renders to do: none below POOL_MIN_APPS or on one CPU
    (`BLUMEOPS_ARGOCD_POOL_MIN_APPS` overrides the threshold, for measuring)."""
    import os

    threshold = int(os.environ.get("BLUMEOPS_ARGOCD_POOL_MIN_APPS") or POOL_MIN_APPS)
    cpus = os.cpu_count() or 1
    return min(cpus, POOL_MAX_WORKERS) if apps >= threshold and cpus > 1 else 0


def _render_check(shared: RepoRender, name: str, kube_version: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        from blumeops_tasks.argocd import render

        result = shared.results()[0][name]
        if isinstance(result, render.ToolMissing):
            return failed(str(result), "install the tool it names")
        if isinstance(result, render.RenderError):
            return failed(f"{name}: {result}", "fix the source as the tool says")
        if result.skip:
            return skipped(f"{name}: {result.skip}")
        if not result.objects:
            return failed(f"{name}: renders no objects", "list the manifests it should deploy")
        checked = shared.validation(name, result.objects, kube_version)
        if checked.problems:
            return failed(
                "; ".join(checked.problems), f"fix the objects to match the Kubernetes {kube_version} schemas"
            )
        count = len(result.objects) - checked.skipped
        total = f"{count} of {len(result.objects)}" if checked.skipped else str(count)
        detail = f"{total} objects ({result.tool}) valid for Kubernetes {kube_version}"
        if result.notes:
            detail += f" ({'; '.join(result.notes)})"
        if checked.by_crd:
            detail += f", {checked.by_crd} against a CRD in the repo"
        if checked.unchecked:
            detail += f"; not validated (no schema, no CRD in the repo): {', '.join(checked.unchecked)}"
        return ok(detail)

    return run


def _secrets_check(repo: Path, base: str, files: list[str] | None = None) -> Callable[[], Outcome]:
    """No committed Secret values under the tree; with `files`, in those files only (a commit can add a
    Secret only in a file it changes)."""

    def run() -> Outcome:
        from blumeops_tasks.argocd import committed_secrets

        found = committed_secrets.find(repo, base) if files is None else _secret_files(repo, files)
        if found:
            return failed(
                f"a Secret with data/stringData is committed in {', '.join(found)}",
                "remove it from git (and rotate the values); use an ExternalSecret or SealedSecret",
            )
        where = f"{base}/" if files is None else f"the {len(files)} changed file(s)"
        return ok(f"no Secret values in {where}")

    return run


def _secret_files(repo: Path, files: list[str]) -> list[str]:
    """committed_secrets' verdict on just these repo-relative files (each read as a tree of one)."""
    from blumeops_tasks.argocd import committed_secrets

    found: list[str] = []
    for relative in files:
        path = repo / relative
        if path.is_file() and path.suffix in committed_secrets.SUFFIXES:
            with tempfile.TemporaryDirectory(prefix="blumeops-secrets-") as scratch:
                copy = Path(scratch) / "tree" / path.name
                copy.parent.mkdir()
                copy.write_bytes(path.read_bytes())
                if committed_secrets.find(Path(scratch), "tree"):
                    found.append(relative)
    return found


def offline_checks(c: Context, only: set[str] | None = None, changed: list[str] | None = None) -> list[CheckSpec]:
    """Every app's rows, or with `only` the rows of those apps (plus the rows about the whole tree;
    `changed`: the secrets row reads only those files)."""
    from blumeops_tasks.argocd import apps

    repo = repo_root(c)
    base = str(_cfg(c, "dir"))
    strict = lint_strict(c)
    manifests_root = f"{base}/{apps.MANIFESTS_DIR}"
    secrets = CheckSpec(NAME, "no committed secrets", _secrets_check(repo, base, changed))
    try:
        local = apps.load(repo, base)
    except apps.ManifestError as exc:
        message = str(exc)
        return [CheckSpec(NAME, "applications", lambda: failed(message, "fix the YAML")), secrets]
    if changed is not None:
        only = apps_touched(base, local, changed)
    specs: list[CheckSpec] = []
    if not local:
        specs.append(CheckSpec(NAME, "applications", lambda: failed(f"no Applications under {base}/")))
    for app in local:
        if only is not None and app.name not in only:
            continue
        found = apps.problems(
            app,
            repo=repo,
            repo_url=str(_cfg(c, "repo_url")),
            branch=str(_cfg(c, "branch")),
            namespace=str(_cfg(c, "namespace")),
            manifests_root=manifests_root,
        )
        policy = "auto-sync" if app.automated else "manual sync"
        what = f"{len(app.sources)} sources" if app.multi_source else f"{app.path or app.source.get('chart')}"
        detail = f"{what} @ {app.target_revision}, {policy}"
        specs.append(CheckSpec(NAME, f"app {app.name}", _findings_check(found, detail, strict)))
    pairing = apps.pairing_problems(local, repo, manifests_root)
    specs.append(
        CheckSpec(NAME, "apps and manifests pair up", _findings_check(pairing, "every directory has an app", strict))
    )
    specs.append(secrets)
    kube_version = str(_cfg(c, "kube_version"))
    children = [app for app in local if not app.root]
    shared = RepoRender(c, children, repo, only)
    for app in shared.checked:
        specs.append(CheckSpec(NAME, f"render {app.name}", _render_check(shared, app.name, kube_version)))
    return specs


def apps_touched(base: str, local: list[Any], changed: list[str]) -> set[str] | None:
    """The apps the changed paths belong to, as `inv affected` maps them (the Application whose source
    path holds the file; an Application manifest -> the app it defines); None: the whole layer."""
    from blumeops_tasks.gitops import targets
    from blumeops_tasks.gitops.git_state import path_in

    by_file = {app.file.as_posix(): app.name for app in local}
    sources = {
        str(source["path"]).strip("/"): app.name
        for app in local
        for source in app.sources
        if source.get("path") and path_in(str(source["path"]).strip("/") + "/", (base + "/",))
    }
    index = targets.ArgoIndex(sources, frozenset(by_file))
    info = targets.LayerInfo(NAME, (f"{base}/",), "argocd.sync")
    known = {app.name for app in local}
    touched: set[str] = set()
    for hit in targets.map_paths(changed, [info], targets.HostsIndex(), index):
        if hit.path in by_file:
            touched.add(by_file[hit.path])
        elif hit.kind == "app" and hit.target in known:
            touched.add(hit.target)
        else:
            return None
    return touched


def scoped_checks(c: Context, changed: list[str]) -> list[CheckSpec]:
    """`inv check --changed`: the rows of the apps the changed files belong to (every app's rows when a
    change is not one app's)."""
    return offline_checks(c, changed=changed)


# --- preflight ------------------------------------------------------------------------------


class _Probe:
    """Talks to the API once for all preflight checks (they run concurrently)."""

    def __init__(self, c: Context) -> None:
        self.target = flows.target(c)
        self._lock = threading.Lock()
        self._result: dict[str, Outcome] | None = None

    def result(self) -> dict[str, Outcome]:
        with self._lock:
            if self._result is None:
                self._result = self._probe()
            return self._result

    def _probe(self) -> dict[str, Outcome]:
        from blumeops_tasks.argocd import client

        t = self.target
        skipped = "not checked: an earlier check failed"
        out: dict[str, Outcome] = {}
        files = client.kubeconfig_files(t.kubeconfig)
        if not any(f.is_file() for f in files):
            fix = "set KUBECONFIG or blumeops.argocd.kubeconfig to the cluster's kubeconfig"
            out["kubeconfig"] = failed(f"no kubeconfig at {t.kubeconfig}", fix)
            return out
        out["kubeconfig"] = ok(t.kubeconfig)
        try:
            names = client.contexts(t.kubeconfig)
        except client.ArgoApiError as exc:
            out["context"] = failed(exc.message, "repair the kubeconfig")
            return out
        if t.context not in names:
            out["context"] = failed(
                f"context {t.context!r} not in the kubeconfig (has: {', '.join(names) or 'none'})",
                "set blumeops.argocd.context (INVOKE_BLUMEOPS_ARGOCD_CONTEXT) to the homelab cluster's context",
            )
            return out
        out["context"] = ok(t.context)
        try:
            with client.ArgoApi(t) as api:
                served = api.resource_names()
                out["api reachable"] = ok(api.server)
        except client.ArgoApiError as exc:
            if exc.status is None:
                out["api reachable"] = failed(exc.message, "check the network path to the API server")
                return out
            out["api reachable"] = ok(f"answered HTTP {exc.status}")
            if exc.status in (401, 403):
                out["credentials"] = failed(exc.message, "log in again / refresh the kubeconfig credentials")
            elif exc.status == 404:
                out["credentials"] = ok("accepted")
                out["application CRD"] = failed(
                    "argoproj.io/v1alpha1 is not served", "install ArgoCD, or pick the cluster that runs it"
                )
            else:
                out["credentials"] = warn(skipped)
                out["application CRD"] = failed(exc.message, "retry when the API server is healthy")
            return out
        out["credentials"] = ok("accepted")
        if "applications" in served:
            out["application CRD"] = ok("argoproj.io/v1alpha1 applications served")
        else:
            out["application CRD"] = failed(
                "argoproj.io/v1alpha1 is served without applications", "install or upgrade ArgoCD's CRDs"
            )
        return out


PREFLIGHT_NAMES = ("kubeconfig", "context", "api reachable", "credentials", "application CRD")


def preflight_checks(c: Context) -> list[CheckSpec]:
    probe = _Probe(c)

    def check(key: str) -> Callable[[], Outcome]:
        def run() -> Outcome:
            return probe.result().get(key) or failed("not checked: an earlier check failed", "fix that first")

        return run

    return [CheckSpec(NAME, key, check(key)) for key in PREFLIGHT_NAMES]


# --- plan -----------------------------------------------------------------------------------


def plan(c: Context) -> LayerPlan:
    from blumeops_tasks.argocd import app_state, apps, client

    try:
        local = apps.load(repo_root(c), str(_cfg(c, "dir")))
    except apps.ManifestError as exc:
        return LayerPlan(NAME, error=f"{exc}; fix the manifest (inv check --layer=argocd shows every problem)")
    try:
        with client.ArgoApi(flows.target(c)) as api:
            live = {str((o.get("metadata") or {}).get("name")): o for o in api.list()}
    except client.ArgoApiError as exc:
        return LayerPlan(NAME, error=exc.message)
    namespace = str(_cfg(c, "namespace"))
    targets: list[TargetPlan] = []
    for app in local:
        obj = live.get(app.name)
        if obj is None:
            how = "kubectl apply -f argocd/root.yaml" if app.root else "sync the root app"
            change = Change("create", f"Application/{namespace}/{app.name}", detail=f"not in the cluster; {how}")
            targets.append(TargetPlan(app.name, (change,)))
        else:
            diverged = app_state.divergence(obj, app.sources, str(_cfg(c, "repo_url")))
            targets.append(app_state.changes(obj, diverged, namespace))
    return LayerPlan(
        NAME,
        tuple(targets),
        note="as ArgoCD last compared; inv argocd.diff --app=NAME refreshes first",
    )
