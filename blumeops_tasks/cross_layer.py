"""Root tasks that run across every registered layer: check, preflight, plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, layers
from blumeops_tasks.adopt import init
from blumeops_tasks.config import repo_path, repo_root, setting
from blumeops_tasks.heartbeat import heartbeat
from blumeops_tasks.tasking import task

if TYPE_CHECKING:  # `inv --list` must not pay for these: imported inside the tasks
    from blumeops_tasks.layer import Layer
    from blumeops_tasks.plan import LayerPlan
    from blumeops_tasks.preflight import CheckSpec

LAYER_HELP = "only this layer (default: all)"
JSON_HELP = "print JSON instead of tables"


def missing_paths(c: Context, layer: Layer) -> list[str]:
    """`blumeops.<layer>.<key> = <value>` for each of the layer's path settings that points nowhere."""
    missing = []
    for key in layer.path_settings:
        value = str(setting(c, f"{layer.name}.{key}") or "")
        if value and not repo_path(c, value).exists():  # empty: the repo has none (e.g. no ansible.cfg)
            missing.append(f"blumeops.{layer.name}.{key} = {value}")
    return missing


def missing_sentence(missing: list[str]) -> str:
    """One sentence for the settings `missing_paths` found: what points nowhere, and where to set it."""
    if len(missing) == 1:
        return f"{missing[0]} does not exist; set it in invoke.yaml"
    return f"{', '.join(missing)} do not exist; set them in invoke.yaml"


def paths_check(c: Context, layer: Layer, missing: list[str] | None = None) -> CheckSpec:
    """One `inv check` row per layer: every native path it is configured with exists."""
    from blumeops_tasks import preflight as runner

    missing = missing_paths(c, layer) if missing is None else missing
    values = [str(setting(c, f"{layer.name}.{key}")) for key in layer.path_settings]

    def run() -> runner.Outcome:
        if not missing:
            return runner.ok(f"found {', '.join(values)}")
        return runner.failed(
            missing_sentence(missing),
            f"point blumeops.{layer.name}.* at your layout (docs/adopt.md); the layer's other checks did not run",
        )

    return runner.CheckSpec(layer.name, "paths exist", run)


def layer_specs(c: Context, selected: tuple[Layer, ...], kind: str) -> list[CheckSpec]:
    """Each layer's paths row, then its own checks of `kind` ("offline" or "preflight"); a layer whose
    paths point nowhere gets only that row (its checks would repeat the cause as errors of their own)."""
    specs: list[CheckSpec] = []
    if kind == "preflight":
        from blumeops_tasks import onepassword

        specs.extend(onepassword.preflight_checks(c))
    for lay in selected:
        missing = missing_paths(c, lay)
        specs.append(paths_check(c, lay, missing))
        if missing:
            continue
        if kind == "offline":
            specs.extend(lay.offline_checks(c))
        else:
            from blumeops_tasks.gitops.session import git_check

            specs.extend((git_check(c, lay), *lay.preflight_checks(c)))
    return specs


def changed_paths(c: Context, since: str | None) -> list[str]:
    """Repo-relative paths of the uncommitted changes (staged, unstaged, untracked: under a pre-commit
    hook, what is being committed), plus with `since` every file that differs between REF and HEAD."""
    from blumeops_tasks.gitops import git_state

    root = repo_root(c)
    status = git_state.read_status(c, root)
    committed: list[str] = []
    if since:
        base = git_state.resolve_since(c, root, since, "e.g. --since=HEAD~1 or --since=origin/main")
        committed = git_state.changed_since(c, root, base)
    return list(dict.fromkeys([*committed, *status.changed]))


def changes_by_layer(c: Context, selected: tuple[Layer, ...], paths: list[str]) -> dict[str, list[str]]:
    """Each selected layer's share of `paths`, by the paths it owns (the mapping `inv affected` uses);
    a file no layer owns belongs to none."""
    from blumeops_tasks.gitops import targets
    from blumeops_tasks.layer import owned_paths

    infos = [targets.LayerInfo(lay.name, owned_paths(c, lay), lay.apply_task) for lay in selected]
    scope: dict[str, list[str]] = {}
    for hit in targets.map_paths(paths, infos, targets.HostsIndex(), targets.ArgoIndex()):
        if hit.layer is not None:
            scope.setdefault(hit.layer, []).append(hit.path)
    return scope


def changed_specs(c: Context, selected: tuple[Layer, ...], scope: dict[str, list[str]]) -> list[CheckSpec]:
    """For each layer with changed files: its paths row, then the checks of what those files touch."""
    from blumeops_tasks.layer import checks_for_changes

    specs: list[CheckSpec] = []
    for lay in selected:
        mine = scope.get(lay.name)
        if not mine:
            continue
        missing = missing_paths(c, lay)
        specs.append(paths_check(c, lay, missing))
        if not missing:
            specs.extend(checks_for_changes(c, lay, mine))
    return specs


def _report(results: list[Any], title: str, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    from blumeops_tasks import preflight as runner

    if as_json:
        console.print_json({**runner.to_json(results), **(extra or {})})
    else:
        runner.render(title, results)
    code = runner.exit_code(results)
    if code:
        raise Exit(code=code)


def _run(c: Context, kind: str, layer: str | None, as_json: bool) -> None:
    from blumeops_tasks import preflight as runner

    selected = layers.select(layer, c)
    specs = layer_specs(c, selected, kind)
    if kind == "offline":
        timeout, title = float(setting(c, "check_timeout")), "Offline checks"
    else:
        timeout, title = float(setting(c, "preflight_timeout")), "Preflight"
    with console.status(f"{title}: {len(specs)} checks"):
        results = runner.run_checks(specs, default_timeout=timeout)
    _report(results, title, as_json)


def _run_changed(c: Context, layer: str | None, since: str | None, as_json: bool) -> None:
    from blumeops_tasks import preflight as runner

    selected = layers.select(layer, c)
    paths = changed_paths(c, since)
    scope = changes_by_layer(c, selected, paths)
    extra = {"changed": paths, "scope": scope}
    if not scope:
        if as_json:
            console.print_json({"exit_code": 0, "checks": [], **extra})
        elif paths:
            console.out(f"{len(paths)} changed file(s), none in a layer's paths: nothing to check.")
        else:
            console.out("No changed files: nothing to check.")
        return
    specs = changed_specs(c, selected, scope)
    title = f"Offline checks of {len(paths)} changed file(s)"
    with console.status(f"{title}: {len(specs)} checks"):
        results = runner.run_checks(specs, default_timeout=float(setting(c, "check_timeout")))
    _report(results, title, as_json, extra)


@task(
    help={
        "layer": LAYER_HELP,
        "json": JSON_HELP,
        "changed": "check only what the uncommitted (staged, unstaged, untracked) files touch: a role -> the "
        "playbooks that run it, an app's files -> that app, the tailnet program -> the tailnet checks",
        "since": "with --changed: also the files changed between this git ref and HEAD (e.g. origin/main)",
    }
)
def check(c: Context, layer: str | None = None, json: bool = False, changed: bool = False, since: str = "") -> None:
    """Offline checks of every native file (no network, credentials or remote host). Exit 1 on any failure."""
    if since and not changed:
        console.fail("--since works with --changed; run `inv check --changed --since=REF`.")
    if changed:
        _run_changed(c, layer, since or None, json)
        return
    _run(c, "offline", layer, json)


@task(help={"layer": LAYER_HELP, "json": JSON_HELP})
def preflight(c: Context, layer: str | None = None, json: bool = False) -> None:
    """Environment checks: tools, credentials, reachability. Exit 1 on any failure."""
    _run(c, "preflight", layer, json)


def _safe_plan(c: Context, lay: Layer) -> LayerPlan:
    from blumeops_tasks.plan import LayerPlan

    missing = missing_paths(c, lay)
    if missing:
        return LayerPlan(lay.name, error=missing_sentence(missing))
    try:
        return lay.plan(c)
    except Exit as exc:
        return LayerPlan(lay.name, error=str(exc.message or f"exit code {exc.code}"))
    except Exception as exc:
        return LayerPlan(lay.name, error=f"{type(exc).__name__}: {exc}".splitlines()[0])


def collect_plans(c: Context, selected: tuple[Layer, ...]) -> list[LayerPlan]:
    """Every selected layer's preview, run concurrently; a failing preview becomes an error row."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(len(selected), 1)) as pool:
        return list(pool.map(lambda lay: _safe_plan(c, lay), selected))


@task(help={"layer": LAYER_HELP, "json": JSON_HELP})
def plan(c: Context, layer: str | None = None, json: bool = False) -> None:
    """Read-only preview of every layer. Exit 0 no changes, 2 changes pending, 1 error."""
    from blumeops_tasks import plan as plan_model

    selected = layers.select(layer, c)
    with console.status(f"Previewing {', '.join(lay.name for lay in selected)}"):
        plans = collect_plans(c, selected)
    plan_model.report(plans, as_json=json)


def _flatten(prefix: str, node: Any) -> list[tuple[str, str]]:
    if hasattr(node, "items"):
        return [pair for key, value in node.items() for pair in _flatten(f"{prefix}.{key}", value)]
    return [(prefix, str(node))]


@task(name="config", help={"json": JSON_HELP})
def show_config(c: Context, json: bool = False) -> None:
    """Effective blumeops settings after defaults < invoke.yaml < INVOKE_BLUMEOPS_* (secrets never live here)."""
    tree = c.config.get("blumeops", {})
    if json:
        console.print_json(_plain(tree))
        return
    console.table("Settings (blumeops.*)", ["setting", "value"], _flatten("blumeops", tree))


def _plain(node: Any) -> Any:
    if hasattr(node, "items"):
        return {key: _plain(value) for key, value in node.items()}
    return node


ROOT_TASKS = (check, preflight, plan, show_config, init, heartbeat)
