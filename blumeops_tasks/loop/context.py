"""`inv context`: one page for a newcomer or an AI assistant about to work in this repo.

Every section comes from the part of the spine (or the layer) that already knows it, through one
adapter function each, so a layer can change how it answers without this page changing:

| section | adapter | asks |
|---|---|---|
| layers and native files | `layer_rows` | `Layer`, `layer.owned_paths`, the layer's task collection |
| hosts, roles, playbooks | `hosts_overview` | the hosts layer's project and inventory (`ansible-inventory`) |
| apps and their paths | `apps_overview` | `argocd.apps.load`; live sync state from the cluster when reachable |
| tailnet tags and devices | `tailnet_overview` | the policy and the program under mocks (cached by `inv check`) |
| pending changes | `pending_rows` | `gitops.tasks.pending_report` |
| last applies | `last_applies` | `gitops.journal` |
| failing checks | `review.offline_results` | the layers' offline checks, the one runner |

A section that cannot be read says why in one line; the page never stops on it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context

from blumeops_tasks import console, layers
from blumeops_tasks.config import repo_root, setting
from blumeops_tasks.layer import owned_paths

if TYPE_CHECKING:
    from blumeops_tasks.layer import Layer

LAST_APPLIES = 5
SHOWN_FAILURES = 15
SHOWN_COMMITS = 3
SHOWN_TARGETS = 12


def _reason(exc: BaseException) -> str:
    from invoke.exceptions import Exit

    text = str(exc.message) if isinstance(exc, Exit) and exc.message else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# ---- adapters: one per thing this page needs ---------------------------------------------------


def layer_rows(c: Context, selected: Sequence[Layer]) -> list[dict[str, Any]]:
    return [
        {
            "layer": lay.name,
            "help": lay.help,
            "native_files": list(owned_paths(c, lay)),
            "apply": f"inv {lay.apply_task}",
            "tasks": sorted(f"{lay.name}.{name}" for name in lay.collection.tasks),
        }
        for lay in selected
    ]


def apply_host(host: str) -> str:
    return f"inv hosts.provision --host={host}"


def _group_members(groups: Mapping[str, Mapping[str, Any]], group: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Hosts of a group in `ansible-inventory --list` JSON, through its children."""
    if group in seen or group not in groups:
        return set()
    entry = groups[group]
    members = {str(h) for h in entry.get("hosts") or []}
    for child in entry.get("children") or []:
        members |= _group_members(groups, str(child), seen | {group})
    return members


def hosts_overview(c: Context) -> dict[str, Any]:
    """Hosts with their groups, playbook and roles, from the hosts layer's project and inventory.

    Groups are Ansible's (`ansible-inventory --list`, cached by the hosts layer). The playbook is the
    one `hosts.provision --host=H` runs (`<playbooks>/<host>.yml`, else the default playbook); the
    roles are those of the plays that target the host (`_roles_by_host`).
    """
    from blumeops_tasks.hosts import inventory as ansible_files
    from blumeops_tasks.hosts.project import load_inventory, project

    try:
        p = project(c)
        inv = load_inventory(c, p)
    except Exception as exc:  # the page goes on; the hosts section says why it is empty
        return {"inventory": None, "hosts": [], "error": _reason(exc)}
    members = {g: _group_members(inv.groups, g) for g in inv.groups if g not in {"all", "ungrouped"}}
    books: dict[Path, list[str]] = {}
    for host in inv.hosts:
        try:
            books.setdefault(ansible_files.playbook_for(p.playbooks, host, p.default_playbook), []).append(host)
        except ansible_files.ProjectError:  # no playbook for the host: `inv check` and the apply say so
            continue
    book_of = {host: book for book, hosts in books.items() for host in hosts}
    try:
        roles, error = _roles_by_host(c, p, books), None
    except Exception as exc:
        roles, error = {}, f"roles not listed: {_reason(exc)}"
    rows = []
    for host in inv.hosts:
        rows.append(
            {
                "host": host,
                "groups": sorted(g for g, hosts in members.items() if host in hosts),
                "playbook": p.rel(book_of[host]) if host in book_of else "",
                "roles": roles.get(host, []),
                "apply": apply_host(host),
            }
        )
    return {"inventory": p.rel(p.inventory), "hosts": rows, "error": error}


def _roles_by_host(c: Context, p: Any, books: Mapping[Path, Sequence[str]]) -> dict[str, list[str]]:
    """Per host, the roles of the plays of its playbook that target it.

    Asked of Ansible (`ansible-playbook --list-hosts --list-tasks`, the hosts layer's `ask.listing`)
    where the hosts layer has it; before that, the roles each playbook's plays list.
    """
    import importlib

    try:
        ask = importlib.import_module("blumeops_tasks.hosts.ask")
    except ImportError:  # (imported by name: the one module holds one of the two shapes)
        plays = importlib.import_module("blumeops_tasks.hosts.inventory")
        return {host: list(plays.play_roles(book)) for book, hosts in books.items() for host in hosts}
    known = {d.name for d in p.roles.iterdir() if d.is_dir()} if p.roles.is_dir() else set()
    roles: dict[str, list[str]] = {}
    for book, hosts in books.items():
        for play in ask.listing(c, p, [book]):
            for host in play.hosts:
                if host in hosts:
                    have = roles.setdefault(host, [])
                    have.extend(r for r in play.roles(known) if r not in have)
    return roles


def live_app_states(c: Context) -> tuple[dict[str, dict[str, str]], str]:
    """Each live Application's sync and health, or ({}, why they could not be read)."""
    try:
        from blumeops_tasks.argocd import app_state
        from blumeops_tasks.argocd.client import ArgoApi
        from blumeops_tasks.argocd.flows import target

        with ArgoApi(target(c)) as api:
            live = api.list()
    except Exception as exc:
        return {}, _reason(exc)
    states = {}
    for obj in live:
        view = app_state.view(obj)
        states[view.name] = {"sync": view.sync_status, "health": view.health, "deployed": view.sync_revision}
    return states, ""


def apps_overview(c: Context, live: bool) -> dict[str, Any]:
    """Applications with their source paths (from git), and their live state when reachable."""
    try:
        from blumeops_tasks.argocd import apps

        local = apps.load(repo_root(c), str(setting(c, "argocd.dir")))
    except Exception as exc:
        return {"apps": [], "state_from": "git", "live_error": None, "error": _reason(exc)}
    if not local:
        return {"apps": [], "state_from": "git", "live_error": None, "error": None}
    states, reason = live_app_states(c) if live else ({}, "--no-live")
    rows = []
    for app in local:
        row: dict[str, Any] = {
            "app": app.name,
            "file": str(app.file),
            "path": app.path,
            "revision": app.target_revision,
            "auto_sync": app.automated,
            "apply": f"inv argocd.sync --app={app.name}",
        }
        if not reason:
            row.update(states.get(app.name) or {"sync": "Missing", "health": "Missing", "deployed": ""})
        rows.append(row)
    return {"apps": rows, "state_from": "git" if reason else "live", "live_error": reason or None, "error": None}


def tailnet_overview(c: Context) -> dict[str, Any]:
    """Tags the policy declares, and the devices the program tags, as the program's mock run reports."""
    try:
        from blumeops_tasks.tailnet import checks, program_check
        from blumeops_tasks.tailnet.policy import declared_tags, parse_hujson

        conf = checks.settings(c)
        tags = sorted(declared_tags(parse_hujson(conf.policy_path.read_text(encoding="utf-8"), conf.policy_path.name)))
        run = program_check.run(conf.project_dir, conf.stack or "check", conf.python, conf.mock_timeout, conf.cache_dir)
    except Exception as exc:
        return {"tags": [], "devices": [], "error": _reason(exc)}
    devices: dict[str, list[str]] = {}
    report = run.report or {}
    for name in program_check.looked_up_devices(report):
        devices[name] = []
    for resource in report.get("resources") or []:
        if str(resource.get("type", "")).endswith(":DeviceTags"):
            inputs = resource.get("inputs") or {}
            name = str(inputs.get("deviceId") or resource.get("name") or "").removeprefix("node-")
            devices[name] = [str(t) for t in inputs.get("tags") or []]
    error = None if run.report is not None else f"the program did not run under mocks: {run.outcome.detail}"
    return {"tags": tags, "devices": [{"device": d, "tags": t} for d, t in devices.items()], "error": error}


def pending_rows(c: Context, selected: Sequence[Layer]) -> dict[str, Any]:
    from blumeops_tasks.gitops.tasks import pending_report, shared_notes

    try:  # this clone's journal and the notes of other clones it already fetched (no network)
        _root, shared = shared_notes(c, fetch=False)
        report = pending_report(c, selected, shared)
    except Exception as exc:
        return {"layers": [], "error": _reason(exc)}
    rows = [
        {
            "layer": item["layer"],
            "state": item["state"],
            "commits": len(item["commits"]),
            "latest": [f"{ci['sha'][:12]} {ci['subject']}" for ci in item["commits"][:SHOWN_COMMITS]],
            "uncommitted": len(item["uncommitted"]),
            "apply": item["apply"],
            # per target (host, app, stack) where the journal keeps them apart
            "targets": [_target_state(row) for row in item.get("targets") or []],
        }
        for item in report["layers"]
    ]
    return {"layers": rows, "error": None}


def _target_state(row: Mapping[str, Any]) -> dict[str, Any]:
    commits = row.get("commits")
    return {
        "target": row.get("target"),
        "state": row.get("state"),
        "commits": commits if isinstance(commits, int) else len(commits or []),
    }


def last_applies(c: Context) -> list[dict[str, Any]]:
    from blumeops_tasks.gitops import journal

    entries, _bad = journal.read(journal.journal_path(c))
    keys = ("time", "layer", "task", "targets", "result", "commit", "user", "machine")
    return [{key: entry.get(key) for key in keys} for entry in journal.select(entries, None, LAST_APPLIES)]


def common_jobs(selected: Sequence[Layer]) -> list[dict[str, str]]:
    jobs = [
        ("check every native file offline (no network, no credentials)", "inv check"),
        ("check tools, credentials and reachability", "inv preflight"),
        ("preview every layer (exit 0 none, 2 pending, 1 error)", "inv plan"),
        ("what a change touches and the commands that apply it", "inv affected --since=origin/main"),
        ("a pull-request comment: checks, targets, plans", "inv review --since=origin/main"),
        ("what was applied, and what is not yet", "inv history; inv pending"),
    ]
    jobs += [(f"apply {lay.name} (preview, confirm, journal)", f"inv {lay.apply_task}") for lay in selected]
    jobs += [
        ("roll a layer's files back to a journal entry, as one commit", "inv rollback --layer=LAYER --to=N"),
        ("clear a lock left by a crashed apply", "inv unlock --layer=LAYER"),
        ("effective settings; every flag of a task", "inv config; inv --help TASK"),
    ]
    return [{"job": job, "command": command} for job, command in jobs]


# ---- the page ---------------------------------------------------------------------------------


def collect(c: Context, *, live: bool, selected: Sequence[Layer] | None = None) -> dict[str, Any]:
    from blumeops_tasks.gitops import git_state
    from blumeops_tasks.loop.review import offline_results

    chosen = tuple(selected) if selected is not None else layers.in_use(c)
    root = repo_root(c)
    status = git_state.read_status(c, root)
    checks = offline_results(c, chosen)  # first: it warms the caches the sections below read
    names = {lay.name for lay in chosen}
    return {
        "repo": str(root),
        "head": status.oid,
        "branch": status.branch,
        "layers": layer_rows(c, chosen),
        "hosts": hosts_overview(c) if "hosts" in names else None,
        "apps": apps_overview(c, live) if "argocd" in names else None,
        "tailnet": tailnet_overview(c) if "tailnet" in names else None,
        "pending": pending_rows(c, chosen),
        "last_applies": last_applies(c),
        "checks": {
            "counts": {s: sum(1 for r in checks if r["status"] == s) for s in ("ok", "warn", "fail", "skip")},
            "problems": [r for r in checks if r["status"] in {"fail", "warn"}],
        },
        "commands": common_jobs(chosen),
    }


def _join(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items) or "-"


def _section(lines: list[str], title: str, error: str | None = None) -> None:
    lines += ["", f"## {title}"]
    if error:
        lines.append(f"(not read: {error})")


def _hosts_lines(lines: list[str], hosts: Mapping[str, Any]) -> None:
    _section(lines, f"Hosts (inventory: {hosts['inventory'] or '?'})", hosts["error"])
    for row in hosts["hosts"]:
        lines.append(
            f"- {row['host']}: groups {_join(row['groups'])}; playbook {row['playbook'] or '-'}; "
            f"roles {_join(row['roles'])}; `{row['apply']}`"
        )


def _apps_lines(lines: list[str], apps: Mapping[str, Any]) -> None:
    title = "ArgoCD apps"
    if apps["state_from"] == "live":
        title += " (sync/health live from the cluster)"
    elif apps["live_error"]:
        title += f" (from git; live state not read: {apps['live_error']})"
    _section(lines, title, apps["error"])
    if not apps["apps"] and not apps["error"]:
        lines.append("- no Application manifests")
    for row in apps["apps"]:
        sync = "auto-sync" if row["auto_sync"] else "manual sync"
        live_state = f"; {row['sync']}/{row['health']}" if "sync" in row else ""
        where = f"{row['path'] or '-'} @ {row['revision'] or '-'}"
        lines.append(f"- {row['app']}: {where}, {sync}{live_state}; `{row['apply']}`")


def _tailnet_lines(lines: list[str], tailnet: Mapping[str, Any]) -> None:
    _section(lines, "Tailnet", tailnet["error"])
    lines.append(f"- tags declared: {_join(tailnet['tags'])}")
    lines += [f"- device {row['device']}: {_join(row['tags'])}" for row in tailnet["devices"]]


def _records_lines(lines: list[str], doc: Mapping[str, Any]) -> None:
    _section(lines, "Pending per layer (git + journal)", doc["pending"]["error"])
    for row in doc["pending"]["layers"]:
        extra = f", {row['uncommitted']} uncommitted files" if row["uncommitted"] else ""
        commits = f"{row['commits']} commit{'' if row['commits'] == 1 else 's'}"
        lines.append(f"- {row['layer']}: {row['state']}, {commits}{extra}; apply `{row['apply']}`")
        if row["targets"]:
            shown = [f"{t['target']} {t['state']}" for t in row["targets"][:SHOWN_TARGETS]]
            more = len(row["targets"]) - SHOWN_TARGETS
            lines.append(f"    targets: {', '.join(shown)}" + (f" (+{more} more)" if more > 0 else ""))
        lines += [f"    {latest}" for latest in row["latest"]]
    _section(lines, f"Last applies (newest first, at most {LAST_APPLIES})")
    for entry in doc["last_applies"]:
        lines.append(
            f"- {entry['time']} {entry['task']} {_join(entry['targets'] or [])} {entry['result']} "
            f"at {str(entry['commit'] or '-')[:12]} by {entry['user']}@{entry['machine']}"
        )
    if not doc["last_applies"]:
        lines.append("- none journaled in this clone")


def _checks_lines(lines: list[str], checks: Mapping[str, Any]) -> None:
    counts = checks["counts"]
    warnings = f"{counts['warn']} warning{'' if counts['warn'] == 1 else 's'}"
    _section(lines, f"Offline checks: {counts['fail']} failed, {warnings}, {counts['ok']} ok")
    for row in checks["problems"][:SHOWN_FAILURES]:
        lines.append(f"- {row['status']} {row['layer']}/{row['name']}: {row['detail']}")
    if len(checks["problems"]) > SHOWN_FAILURES:
        lines.append(f"- ... {len(checks['problems']) - SHOWN_FAILURES} more: inv check")


def text(doc: Mapping[str, Any]) -> str:
    """The page as plain Markdown-ish text."""
    where = f"{str(doc['head'] or '')[:12] or 'no commit'}" + (f" on {doc['branch']}" if doc.get("branch") else "")
    lines = [
        f"# blumeops context: {doc['repo']} ({where})",
        "Native files are the product; `inv` tasks are guardrails around the tools that apply them.",
    ]
    _section(lines, "Layers (native files -> apply task)")
    for row in doc["layers"]:
        lines.append(f"- {row['layer']}: {row['help']}. Files: {_join(row['native_files'])}. Apply: `{row['apply']}`.")
        lines.append(f"  tasks: {_join(row['tasks'])}")
    if doc.get("hosts") is not None:
        _hosts_lines(lines, doc["hosts"])
    if doc.get("apps") is not None:
        _apps_lines(lines, doc["apps"])
    if doc.get("tailnet") is not None:
        _tailnet_lines(lines, doc["tailnet"])
    _records_lines(lines, doc)
    _checks_lines(lines, doc["checks"])
    _section(lines, "Common jobs")
    lines += [f"- {row['job']}: `{row['command']}`" for row in doc["commands"]]
    return "\n".join(lines) + "\n"


def run(c: Context, *, as_json: bool, live: bool) -> None:
    from blumeops_tasks.redaction import redact

    document = collect(c, live=live)
    if as_json:
        console.print_json(document)
        return
    sys.stdout.write(redact(text(document)))
    sys.stdout.flush()
