"""Root tasks over the apply journal and git history: history, pending, affected, unlock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, layers
from blumeops_tasks.config import repo_root
from blumeops_tasks.layer import owned_paths
from blumeops_tasks.tasking import task

if TYPE_CHECKING:  # git_state, journal, notes and targets are imported inside the tasks: `inv --list` stays light
    from blumeops_tasks.gitops.notes import Shared
    from blumeops_tasks.layer import Layer

LAYER_HELP = "only this layer (default: all)"
JSON_HELP = "print JSON instead of tables"
SHOWN_COMMITS = 10
RESULT_STYLE = {
    "succeeded": "green",
    "no-changes": "green",
    "failed": "red",
    "interrupted": "yellow",
    "declined": "dim",
    "refused": "magenta",
    "started": "yellow",
}


# ---- history ------------------------------------------------------------------------------------


def plan_summary(counts: Mapping[str, int] | None) -> str:
    if not counts:
        return "-"
    parts = [f"{n} {action}" for action, n in counts.items() if n]
    return ", ".join(parts) if parts else "none"


def git_summary(entry: Mapping[str, Any]) -> str:
    if entry.get("allow_dirty_override"):
        return "override"
    return "dirty" if entry.get("dirty") else "clean"


NO_END = "no end line: still running, or killed before it could write one (SIGKILL, power loss)"


def scope_summary(entry: Mapping[str, Any]) -> str:
    """The targets, and what narrowed the run: "indri (tags caddy; limit web*)"."""
    text = ",".join(str(t) for t in entry.get("targets") or []) or "-"
    narrowed = []
    if entry.get("tags"):
        narrowed.append(f"tags {','.join(str(t) for t in entry['tags'])}")
    if entry.get("limit"):
        narrowed.append(f"limit {entry['limit']}")
    return f"{text} ({'; '.join(narrowed)})" if narrowed else text


HISTORY_COLUMNS = (
    "time",
    "layer",
    "task",
    "targets",
    "result",
    "exit",
    "commit",
    "git",
    "by",
    "took",
    "plan",
    "message",
)
FETCH_HELP = "first fetch the journal notes other clones pushed (refs/notes/blumeops from blumeops.git.remote)"


def history_rows(entries: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for entry in entries:
        started = entry.get("result") == "started"
        message = str(entry.get("message") or "")
        if started:
            message = "; ".join(m for m in (NO_END, message) if m)
        elif entry.get("override_reason"):
            message = "; ".join(m for m in (message, f"override: {entry['override_reason']}") if m)
        rows.append(
            [
                str(entry.get("time", "")),
                str(entry.get("layer", "")),
                str(entry.get("task", "")),
                scope_summary(entry),
                str(entry.get("result", "")) + ("\nunpublished" if entry.get("shared") == "unpublished" else ""),
                "-" if started else str(entry.get("exit_code", "")),
                str(entry.get("commit") or "-")[:12],
                git_summary(entry),
                f"{entry.get('user', '?')}@{entry.get('machine', '?')}"
                + ("\nvia notes" if entry.get("shared") == "notes-only" else ""),
                f"{float(entry.get('duration_s') or 0):.1f}s",
                plan_summary(entry.get("plan_counts")),
                message,
            ]
        )
    return rows


def shared_notes(c: Context, *, fetch: bool) -> tuple[Path, Shared]:
    """The repo root and the notes' state after a queued push is retried (and a fetch, if asked);
    its problems are printed as notes on stderr."""
    from blumeops_tasks.gitops import notes

    root = repo_root(c)
    shared = notes.sync(c, root, fetch_now=fetch)
    for problem in shared.problems:
        console.note(problem)
    return root, shared


def notes_footer(shared: Shared) -> None:
    """One line on where entries of other clones come from, and how fresh they are."""
    fetched = f"last fetched {shared.fetched}" if shared.fetched else "not fetched by blumeops yet"
    console.note(f"Entries of other clones come from the notes of {shared.remote} ({fetched}); --fetch refreshes them.")
    if shared.unpublished and not shared.problems:  # a failed retry already said so
        count = len(shared.unpublished)
        console.note(
            f"{count} entr{'y' if count == 1 else 'ies'} of this clone not yet pushed to {shared.remote} "
            f"(marked unpublished): the next blumeops task retries."
        )


@task(
    help={
        "layer": LAYER_HELP,
        "limit": "show at most this many entries, newest first (0: all; default 20)",
        "fetch": FETCH_HELP,
        "json": JSON_HELP,
    }
)
def history(c: Context, layer: str | None = None, limit: int = 20, fetch: bool = False, json: bool = False) -> None:
    """The apply journal with other clones' notes, newest first: who applied what, from which commit, how it ended."""
    if layer:
        layers.select(layer, c)
    from blumeops_tasks.gitops import journal, notes

    path = journal.journal_path(c)
    root, shared = shared_notes(c, fetch=fetch)
    # read from the ends of the journal and of the notes' history: costs what it shows
    scan = journal.newest(path, layer, limit, shared=notes.entries(c, root, shared.head))
    chosen, bad = notes.annotate(scan.entries, scan.sources, shared.unpublished), scan.bad
    if json:
        console.print_json({"journal": str(path), "notes": shared.to_dict(), "skipped_lines": bad, "entries": chosen})
        return
    if bad:
        console.note(f"{bad} unreadable line(s) in {path} skipped.")
    if not chosen:
        console.out(f"No applies journaled yet{f' for {layer}' if layer else ''} (journal: {path}).")
        return
    console.table(
        "Apply history (newest first)",
        HISTORY_COLUMNS,
        history_rows(chosen),
        [RESULT_STYLE.get(str(e.get("result"))) for e in chosen],
    )
    notes_footer(shared)


# ---- pending ------------------------------------------------------------------------------------


def pending_state(last: Mapping[str, Any] | None, known: bool, head: str | None, commits: int) -> str:
    """never-applied / unknown-commit / up-to-date / pending."""
    if last is None:
        return "never-applied"
    if not known:
        return "unknown-commit"
    if commits == 0 or last.get("commit") == head:
        return "up-to-date"
    return "pending"


def layer_state(states: Sequence[str]) -> str:
    """A layer's state from its targets': unknown-commit wins, then pending (some target behind or
    never applied while another was), never-applied (no target ever was), up-to-date."""
    if "unknown-commit" in states:
        return "unknown-commit"
    if states and all(state == "never-applied" for state in states):
        return "never-applied"
    if any(state in {"pending", "never-applied"} for state in states):
        return "pending"
    return "up-to-date"


def pending_exit_code(states: Sequence[str]) -> int:
    """0 every layer up to date, 2 something to apply, 1 a last-applied commit unknown here."""
    if "unknown-commit" in states:
        return 1
    if any(state in {"pending", "never-applied"} for state in states):
        return 2
    return 0


def _last_apply(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    keys = (
        "time",
        "apply_id",
        "user",
        "machine",
        "task",
        "targets",
        "tags",
        "limit",
        "commit",
        "dirty",
        "allow_dirty_override",
        "result",
    )
    return {key: entry.get(key) for key in keys}


def pending_report(c: Context, selected: Sequence[Layer], shared: Shared | None = None) -> dict[str, Any]:
    """Per layer and per target (host, app, stack): the baseline apply - from this clone's journal
    or the notes every clone pushed (`shared`, from `notes.sync`) - and the commits touching the
    layer's files since. A tagged run is never a baseline, a run for some hosts is one only for
    those hosts, so a partial apply marks only what it touched."""
    from blumeops_tasks.gitops import git_state, journal, notes

    root = repo_root(c)
    status = git_state.read_status(c, root)
    found, _bad = journal.baselines(
        journal.journal_path(c),
        {lay.name: list(lay.targets(c)) for lay in selected},
        shared=notes.entries(c, root, shared.head) if shared is not None else (),
    )
    resolved: dict[str, bool] = {}
    logs: dict[tuple[str, str | None], list[git_state.Commit]] = {}

    def known(commit: str) -> bool:
        if commit not in resolved:
            resolved[commit] = bool(git_state.resolve(c, root, commit))
        return resolved[commit]

    def since(name: str, paths: Sequence[str], commit: str | None) -> list[git_state.Commit]:
        if status.oid is None:
            return []
        key = (name, commit)
        if key not in logs:
            logs[key] = git_state.log(c, root, f"{commit}..HEAD" if commit else "HEAD", paths)
        return logs[key]

    report: list[dict[str, Any]] = []
    for lay in selected:
        paths = owned_paths(c, lay)
        rows: list[dict[str, Any]] = []
        for target in found.targets(lay.name):
            last = found.baseline(lay.name, target)
            commit = str(last["commit"]) if last else None
            ok = bool(commit and known(commit))
            commits = since(lay.name, paths, commit) if last is None or ok else []
            rows.append(
                {
                    "target": target,
                    "state": pending_state(last, ok, status.oid, len(commits)),
                    "last_apply": _last_apply(last),
                    "commits": len(commits),
                }
            )
        states = [row["state"] for row in rows]
        # The layer counts from its oldest baseline (all commits when some target never was applied).
        bases = [row["last_apply"] for row in rows if row["last_apply"] and row["state"] != "unknown-commit"]
        unknown = [row["last_apply"] for row in rows if row["state"] == "unknown-commit"]
        never = any(state == "never-applied" for state in states)
        oldest = _oldest(c, root, bases) if bases else None
        if unknown:
            layer_commits: list[git_state.Commit] = []
        else:
            layer_commits = since(lay.name, paths, None if never or oldest is None else str(oldest["commit"]))
        report.append(
            {
                "layer": lay.name,
                "state": layer_state(states),
                "last_apply": unknown[0] if unknown else oldest,
                "commits": [commit_.to_dict() for commit_ in layer_commits],
                "targets": rows,
                "uncommitted": [p for p in status.changed if git_state.path_in(p, paths)],
                "apply": f"inv {lay.apply_task}",
            }
        )
    notes_state = shared.to_dict() if shared is not None else None
    return {"head": status.oid, "branch": status.branch, "notes": notes_state, "layers": report}


def _oldest(c: Context, root: Path, bases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The baseline whose commit is an ancestor of the others (the earliest), else the first listed."""
    from blumeops_tasks.gitops import git_state

    commits = list(dict.fromkeys(str(base["commit"]) for base in bases))
    oldest = commits[0]
    for commit in commits[1:]:
        code, _out, _err = git_state.git(c, root, f"merge-base --is-ancestor {commit} {oldest}")
        if code == 0:
            oldest = commit
    return dict(next(base for base in bases if base["commit"] == oldest))


def _describe_last(last: Mapping[str, Any] | None) -> str:
    if not last:
        return "never applied"
    dirty = " (override)" if last.get("dirty") or last.get("allow_dirty_override") else ""
    return f"{str(last.get('commit'))[:12]}{dirty} {last.get('time')} by {last.get('user')}@{last.get('machine')}"


@task(help={"layer": LAYER_HELP, "fetch": FETCH_HELP, "json": JSON_HELP})
def pending(c: Context, layer: str | None = None, fetch: bool = False, json: bool = False) -> None:
    """Per target (host, app, stack), the commits touching its layer's files since any clone last fully applied it.

    Exit 0 every layer up to date, 2 something to apply (or never applied), 1 error.
    """
    selected = layers.select(layer, c)
    _root, shared = shared_notes(c, fetch=fetch)
    report = pending_report(c, selected, shared)
    states = [str(item["state"]) for item in report["layers"]]
    if json:
        console.print_json({"exit_code": pending_exit_code(states), **report})
    else:
        rows = []
        for item in report["layers"]:
            for row in item["targets"]:
                rows.append(
                    [
                        item["layer"],
                        row["target"] if row["target"] != "*" else "(whole layer)",
                        row["state"],
                        _describe_last(row["last_apply"]),
                        str(row["commits"]) if row["state"] != "unknown-commit" else "?",
                    ]
                )
        console.table("Pending per target", ["layer", "target", "state", "last full apply", "commits"], rows)
        for item in report["layers"]:
            _print_pending_detail(item)
        notes_footer(shared)
    code = pending_exit_code(states)
    if code:
        raise Exit(code=code)


def _print_pending_detail(item: Mapping[str, Any]) -> None:
    name, state, commits = item["layer"], item["state"], item["commits"]
    if state == "unknown-commit":
        commit = str((item["last_apply"] or {}).get("commit"))
        console.out(
            f"{name}: last applied commit {commit[:12]} is not in this clone; "
            f"fetch it (`git fetch`) or apply again with `{item['apply']}`."
        )
        return
    if commits:
        title = "never applied; commits touching its files" if state == "never-applied" else "pending commits"
        console.out(f"{name}: {title}:")
        for commit in commits[:SHOWN_COMMITS]:
            console.out(f"  {commit['sha'][:12]} {commit['date'][:10]} {commit['author']}: {commit['subject']}")
        if len(commits) > SHOWN_COMMITS:
            console.out(f"  ... {len(commits) - SHOWN_COMMITS} more (--json lists all)")
        since = str((item["last_apply"] or {}).get("commit") or "")[:12]
        if state == "pending" and since:
            console.out(f"  targets and commands: inv affected --since={since}")
        never = [row["target"] for row in item.get("targets", []) if row["state"] == "never-applied"]
        if never and state != "never-applied":
            console.out(f"  never fully applied: {', '.join(never)} (`{item['apply']}`)")
    if item["uncommitted"]:
        shown = ", ".join(item["uncommitted"][:3])
        more = len(item["uncommitted"]) - 3
        console.out(f"{name}: uncommitted changes in {shown}{f' (+{more} more)' if more > 0 else ''}")


# ---- affected -----------------------------------------------------------------------------------


def affected_report(c: Context, since: str) -> dict[str, Any]:
    from blumeops_tasks.gitops import git_state, targets

    root = repo_root(c)
    base = git_state.resolve_since(c, root, since, "e.g. --since=HEAD~3 or --since=origin/main")
    committed = git_state.changed_since(c, root, base)
    status = git_state.read_status(c, root)
    uncommitted = set(status.changed)
    infos = [targets.LayerInfo(lay.name, owned_paths(c, lay), lay.apply_task) for lay in layers.in_use(c)]
    paths = [*committed, *status.changed]
    hosts_index = targets.hosts_index_for(c, paths, infos)
    hits = targets.map_paths(paths, infos, hosts_index, targets.read_argo_index(root))
    files = [{**hit.to_dict(), "uncommitted": hit.path in uncommitted} for hit in hits]
    return {
        "since": since,
        "base": base,
        "head": status.oid,
        "files": files,
        "commands": targets.commands(hits, infos, hosts_index),
    }


def _target_label(item: Mapping[str, Any]) -> str:
    kind, target = item["kind"], item["target"]
    if kind == "role":
        hosts = ",".join(item["hosts"]) or "no host"
        return f"role {target} on {hosts}"
    if kind == "host":
        return f"host {target}" if not item["note"] else f"{item['note']}: {','.join(item['hosts'])}"
    if kind == "app":
        return f"app {target}"
    if kind == "layer":
        return "whole layer"
    return "-"


@task(
    help={
        "since": "git commit, branch or tag to compare HEAD and the work tree against (default HEAD~1)",
        "json": JSON_HELP,
    }
)
def affected(c: Context, since: str = "HEAD~1", json: bool = False) -> None:
    """Files changed since a ref (plus uncommitted ones), mapped to layers, targets and apply commands."""
    report = affected_report(c, since)
    if json:
        console.print_json(report)
        return
    files = report["files"]
    if not files:
        console.out(f"No files changed since {since} ({str(report['base'])[:12]}).")
        return
    owned = [item for item in files if item["layer"]]
    rows = [
        [
            item["path"] + (" (uncommitted)" if item["uncommitted"] else ""),
            item["layer"],
            _target_label(item),
            item["note"] if item["kind"] != "host" else "",
        ]
        for item in owned
    ]
    if rows:
        console.table(f"Changed since {since}", ["file", "layer", "target", "note"], rows)
    if len(owned) < len(files):
        console.note(f"{len(files) - len(owned)} changed file(s) belong to no layer (--json lists them).")
    commands = report["commands"]
    if not commands:
        console.out("No layer owns these files: nothing to apply.")
        return
    console.out("To apply them:")
    for lines in commands.values():
        for line in lines:
            console.out(f"  {line}")
    if any(item["uncommitted"] and item["layer"] for item in files):
        console.note("Some files are uncommitted: commit and push them first (the apply guard refuses them).")


# ---- unlock -------------------------------------------------------------------------------------


@task(help={"layer": "the layer whose stale apply lock to clear"})
def unlock(c: Context, layer: str) -> None:
    """Clear a stale apply lock left by a dead apply (refuses while the apply or its tools still run)."""
    from blumeops_tasks.gitops.lock import clear_stale, live_groups, orphans_message
    from blumeops_tasks.gitops.session import current_machine, lock_directory

    (lay,) = layers.select(layer, c)
    status, holder = clear_stale(lock_directory(c, repo_root(c)), lay.name, current_machine())
    if status == "busy":
        who = holder.describe() if holder else "another process"
        console.fail(f"The {lay.name} apply lock is held by a running apply ({who}); it is not stale, wait for it.")
    if status == "orphans" and holder is not None:
        console.fail(orphans_message(lay.name, holder, live_groups(holder, current_machine())))
    if status == "free":
        console.out(f"No stale {lay.name} apply lock: nothing to clear.")
        return
    who = holder.describe() if holder else "an unknown holder"
    console.out(f"Cleared the stale {lay.name} apply lock left by {who}.")


ROOT_TASKS = (history, pending, affected, unlock)
