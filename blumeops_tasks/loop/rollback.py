"""`inv rollback`: one commit that restores only a layer's files to an earlier state.

Rollback is git revert made safe: the layer's files (`layer.owned_paths`) are restored from the
chosen commit with `git restore --source`, files the layer gained since are removed, and exactly
those files are committed (`git commit --only`), so nothing else in the repo moves. Push and apply
stay on the usual guarded path (git guard, lock, journal): this task only prints the commands.

`--to` names the state: N (the Nth newest entry of `inv history --layer=L`), an entry's time or a
prefix of it, or anything git resolves to a commit. Decisions are pure functions; git runs through
`gitops.git_state.git`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks import console, layers
from blumeops_tasks.config import repo_root
from blumeops_tasks.gitops import git_state, journal
from blumeops_tasks.layer import Layer, owned_paths

# Bare numbers this short are journal indexes: git never abbreviates a commit to fewer than 4 digits.
INDEX = re.compile(r"^[0-9]{1,3}$")
TIME = re.compile(r"^[0-9]{4}-[0-9]{2}")
SHOWN_FILES = 20
CHANGE_WORDS = {"M": "restore", "D": "remove", "A": "re-create"}


@dataclass(frozen=True)
class Destination:
    """The commit to restore the layer's files from, and how the operator named it."""

    commit: str
    label: str  # "journal entry 2 (2026-11-26T04:20:00Z hosts.provision succeeded)" or "commit abc123"
    entry: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FileChange:
    """One file of the layer, as the rollback commit changes it."""

    status: str  # "M" restored to its old content, "D" removed (gained since), "A" re-created
    path: str

    @property
    def word(self) -> str:
        return CHANGE_WORDS.get(self.status, self.status)


# ---- pure decisions -----------------------------------------------------------------------------


def kind_of(to: str) -> str:
    """How `--to` reads: "index" (1-999), "time" (starts like 2026-11), else "ref"."""
    if INDEX.match(to):
        return "index"
    if TIME.match(to):
        return "time"
    return "ref"


def entry_label(index: int, entry: Mapping[str, Any]) -> str:
    return f"journal entry {index} ({entry.get('time')} {entry.get('task')} {entry.get('result')})"


def pick_entry(entries: Sequence[Mapping[str, Any]], layer: str, to: str) -> tuple[int, Mapping[str, Any]] | str:
    """The journal entry `--to` names among the layer's entries (newest first, 1-based), or why none.

    Returns (index, entry), or a sentence saying what is wrong (no such index, no or several matches).
    """
    chosen = journal.select(entries, layer)
    if not chosen:
        return f"the journal has no {layer} entry yet (inv history --layer={layer})"
    if kind_of(to) == "index":
        index = int(to)
        if not 1 <= index <= len(chosen):
            return f"there is no {layer} journal entry {index}; `inv history --layer={layer}` lists 1 to {len(chosen)}"
        return index, chosen[index - 1]
    matches = [(i, e) for i, e in enumerate(chosen, start=1) if str(e.get("time") or "").startswith(to)]
    if not matches:
        return f"no {layer} journal entry has a time starting with {to!r}"
    if len(matches) > 1:
        shown = ", ".join(f"{i} ({e.get('time')})" for i, e in matches[:3])
        return (
            f"{len(matches)} {layer} journal entries start with {to!r}: {shown}; "
            f"give more of the time or the entry's index"
        )
    return matches[0]


def entry_warnings(entry: Mapping[str, Any]) -> list[str]:
    """What the operator should know about rolling back to this entry's commit."""
    warnings = []
    if entry.get("result") not in journal.SUCCESS_RESULTS:
        warnings.append(
            f"that apply ended {entry.get('result')}: its commit may never have been in effect on the machines"
        )
    if entry.get("dirty") or entry.get("allow_dirty_override"):
        files = ", ".join(str(f) for f in (entry.get("dirty_files") or [])[:3]) or "files"
        warnings.append(
            f"that apply ran with uncommitted changes ({files}): its commit is not exactly what was applied"
        )
    return warnings


def parse_name_status(text: str) -> list[FileChange]:
    """`git diff --name-status -z --no-renames` output -> changes."""
    fields = [f for f in text.split("\0") if f]
    return [FileChange(fields[i][0], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def commit_message(layer: Layer, destination: Destination, changes: Sequence[FileChange]) -> str:
    counts = {word: sum(1 for ch in changes if ch.word == word) for word in CHANGE_WORDS.values()}
    summary = ", ".join(f"{n} {word}d" for word, n in counts.items() if n)
    lines = [
        f"rollback {layer.name} to {destination.commit[:12]}",
        "",
        f"Restores the {layer.name} layer's files to their state at {destination.commit}",
        f"({destination.label}): {summary}. No other file changes.",
    ]
    if destination.entry is not None:
        entry = destination.entry
        lines.append(
            f"Journal: {entry.get('time')} {entry.get('task')} by {entry.get('user')}@{entry.get('machine')}, "
            f"{entry.get('result')}."
        )
    lines += ["", f"Blumeops-Rollback: layer={layer.name} to={destination.commit}"]
    return "\n".join(lines) + "\n"


def literal(paths: Sequence[str]) -> str:
    """Paths for git with --literal-pathspecs: "roles/" as "roles", quoted for the shell."""
    return " ".join(shlex.quote(p.rstrip("/") or p) for p in paths)


# ---- git ------------------------------------------------------------------------------------


def _git_or_fail(c: Context, root: Path, args: str, what: str) -> str:
    code, out, err = git_state.git(c, root, args)
    if code != 0:
        reason = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        console.fail(f"Cannot {what} ({reason}).")
    return out


def resolve_destination(c: Context, root: Path, layer: str, to: str) -> Destination:
    """What `--to` names: a journal entry's commit (index or time), else a commit git knows."""
    kind = kind_of(to)
    if kind in {"index", "time"}:
        entries, _bad = journal.read(journal.journal_path(c))
        picked = pick_entry(entries, layer, to)
        if isinstance(picked, tuple):
            index, entry = picked
            commit = str(entry.get("commit") or "")
            if not commit:
                console.fail(f"{entry_label(index, entry)} records no commit; pick another entry or a commit.")
            sha = git_state.resolve(c, root, commit)
            if sha is None:
                console.fail(
                    f"Commit {commit[:12]} of {entry_label(index, entry)} is not in this clone; "
                    f"fetch it (`git fetch`) and re-run."
                )
            return Destination(sha, entry_label(index, entry), entry)
        if kind == "index" or git_state.resolve(c, root, to) is None:
            console.fail(f"Cannot roll back {layer} to {to!r}: {picked}.")
    sha = git_state.resolve(c, root, to)
    if sha is None:
        console.fail(
            f"{to!r} names no commit here and no journal entry; pass --to=N (an entry of "
            f"`inv history --layer={layer}`), an entry's time, or a commit."
        )
    return Destination(sha, f"commit {to}" if to.startswith(sha[:7]) else f"{to} = {sha[:12]}")


def refuse_dirty(c: Context, root: Path, layer: str, paths: Sequence[str]) -> None:
    status = git_state.read_status(c, root)
    if status.oid is None:
        console.fail("The repository has no commit yet: there is nothing to roll back.")
    dirty = [p for p in status.changed if git_state.path_in(p, paths)]
    if dirty:
        shown = ", ".join(dirty[:3]) + (f" (+{len(dirty) - 3} more)" if len(dirty) > 3 else "")
        console.fail(
            f"Refusing to roll back {layer}: uncommitted changes in {shown}; commit or stash them first "
            f"(`git stash`), so the rollback commit holds nothing but the restored files."
        )


def layer_changes(c: Context, root: Path, commit: str, paths: Sequence[str]) -> list[FileChange]:
    """Files of the layer that differ between HEAD and `commit`, as the rollback would change them."""
    out = _git_or_fail(
        c,
        root,
        f"--literal-pathspecs diff --no-renames --name-status -z HEAD {commit} -- {literal(paths)}",
        f"compare the layer's files with {commit[:12]}",
    )
    return parse_name_status(out)


def make_commit(c: Context, root: Path, commit: str, changes: Sequence[FileChange], message: str) -> str:
    """Restore the files from `commit`, commit exactly them; on failure put them back and stop."""
    files = literal([ch.path for ch in changes])
    _git_or_fail(
        c,
        root,
        f"--literal-pathspecs restore --source={commit} --staged --worktree -- {files}",
        f"restore the files from {commit[:12]}",
    )
    code, _out, err = git_state.git(
        c, root, f"--literal-pathspecs commit --quiet --only -m {shlex.quote(message)} -- {files}"
    )
    if code != 0:
        git_state.git(c, root, f"--literal-pathspecs restore --source=HEAD --staged --worktree -- {files}")
        reason = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        console.fail(f"git commit failed ({reason}); the layer's files are back as they were, nothing was committed.")
    return _git_or_fail(c, root, "rev-parse HEAD", "read the new commit").strip()


# ---- the task -------------------------------------------------------------------------------


def run(c: Context, *, layer_name: str, to: str, yes: bool, preview: bool) -> None:
    (lay,) = layers.select(layer_name, c)
    root = repo_root(c)
    paths = owned_paths(c, lay)
    if not paths:
        console.fail(f"The {lay.name} layer owns no path inside {root}; check blumeops.{lay.name}.* (inv config).")
    refuse_dirty(c, root, lay.name, paths)
    destination = resolve_destination(c, root, lay.name, to)
    for warning in entry_warnings(destination.entry) if destination.entry is not None else []:
        console.note(f"Note: {warning}.")
    changes = layer_changes(c, root, destination.commit, paths)
    if not changes:
        console.out(
            f"The {lay.name} files already match {destination.commit[:12]} ({destination.label}): nothing to commit."
        )
        return
    console.table(
        f"Rollback of {lay.name} to {destination.commit[:12]} ({destination.label})",
        ["change", "file"],
        [[ch.word, ch.path] for ch in changes[:SHOWN_FILES]],
    )
    if len(changes) > SHOWN_FILES:
        console.out(f"... and {len(changes) - SHOWN_FILES} more files")
    console.confirm(
        f"Commit this rollback of {lay.name} ({len(changes)} files)?",
        yes=yes,
        action=f"commit the rollback of {lay.name}",
    )
    new = make_commit(c, root, destination.commit, changes, commit_message(lay, destination, changes))
    console.out(f"Committed {new[:12]}: rollback {lay.name} to {destination.commit[:12]} ({len(changes)} files).")
    show_implied_plan(c, root, lay, preview)
    print_next_steps(c, lay, new)


def show_implied_plan(c: Context, root: Path, lay: Layer, preview: bool) -> None:
    """The layer's live preview at the new commit when it can run; the diff stat always."""
    stat = _git_or_fail(c, root, "show --stat --format= HEAD", "show the commit").rstrip()
    console.out(stat)
    if not preview:
        return
    from blumeops_tasks import plan as plan_model
    from blumeops_tasks.cross_layer import collect_plans

    with console.status(f"Previewing {lay.name} at the rollback commit"):
        (plan,) = collect_plans(c, (lay,))
    if plan.error:
        console.note(f"Live preview not run: {plan.error}")
        return
    plan_model.render([plan])


def next_commands(c: Context, lay: Layer, new: str) -> list[str]:
    """The exact apply commands for the files the rollback commit changed (as `inv affected` says)."""
    from blumeops_tasks.gitops.tasks import affected_report

    commands = affected_report(c, f"{new}~1").get("commands") or {}
    return list(commands.get(lay.name) or [f"inv {lay.apply_task}"])


def print_next_steps(c: Context, lay: Layer, new: str) -> None:
    console.out("Next, on the usual guarded path (git guard, lock, journal):")
    console.out("  git push")
    for command in next_commands(c, lay, new):
        console.out(f"  {command}")
    console.out("Changed your mind before pushing? `git reset --keep HEAD~1` drops the rollback commit.")
