"""The tree an apply reads: a detached worktree of the commit it journals.

An apply of committed files runs from `git worktree add --detach DIR COMMIT` (the clone's hooks
off), so a `git pull`, checkout or commit in the clone while a tool runs cannot hand that tool files
of two commits. Git is the authority on what the commit holds; what git does not track - `.env`, a
vault password file, installed collections, a Pulumi virtualenv or local state - is linked into the
tree from the clone (`git ls-files --others --directory`, ignored files included), so the tools find
it where they always do and what they write there lands in the clone. Submodules (roles kept in
their own repositories) are linked the same way: their files are the clone's checkout of them, which
the git-state guard has already compared with the commit.

A tree lives beside the layer's lock (`<lock dir>/trees/<layer>-<apply id>`, shared by the clones
of the repo) and is removed when its apply ends; one left by a killed apply is removed by the next
apply of the same layer, which holds the layer's lock, so no apply still runs from it.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from invoke.context import Context

from blumeops_tasks.gitops.git_state import git

# Hooks are the operator's, for their own checkouts: a snapshot runs none (post-checkout et al.).
NO_HOOKS = "-c core.hooksPath=/dev/null"


class SnapshotError(Exception):
    """The tree could not be made; `message` is one sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Snapshot:
    tree: Path  # the detached worktree
    commit: str  # what it holds


def parse_untracked(text: str) -> list[str]:
    """`git ls-files -z --others --directory` output: relative paths, a directory with a trailing /."""
    return [entry for entry in text.split("\0") if entry]


def links_to_make(entries: list[str], clone: Path, keep_out: Path) -> list[str]:
    """The untracked entries to link, without any that holds or lies under `keep_out` (the trees'
    own directory, when the state dir is inside the clone: never link a tree into itself)."""
    chosen = []
    for entry in entries:
        source = clone / entry.rstrip("/")
        if keep_out == source or source in keep_out.parents or keep_out in source.parents:
            continue
        chosen.append(entry.rstrip("/"))
    return chosen


def parse_gitlinks(text: str) -> list[str]:
    """`git ls-files -z --stage` output: the paths of submodules (mode 160000), whose files live in
    their own repositories and are checked out in the clone, not in a new worktree."""
    found = []
    for entry in text.split("\0"):
        meta, _, path = entry.partition("\t")
        if path and meta.split(" ", 1)[0] == "160000":
            found.append(path)
    return found


def _git_or_raise(c: Context, root: Path, args: str, what: str) -> str:
    code, out, err = git(c, root, args)
    if code:
        detail = (err or out).strip().splitlines()
        raise SnapshotError(f"{what} failed ({detail[-1] if detail else f'exit code {code}'})")
    return out


def clear_stale(c: Context, clone: Path, parent: Path, layer: str) -> None:
    """Remove trees of `layer` left by applies that were killed, and git's records of them. The caller
    holds the layer's lock, so no apply of the layer still runs from one."""
    stale = sorted(parent.glob(f"{layer}-*"))
    for tree in stale:
        shutil.rmtree(tree, ignore_errors=True)  # never follows the links into the clone
    if stale:
        git(c, clone, "worktree prune")


def make(c: Context, clone: Path, commit: str, directory: Path) -> Snapshot:
    """A detached worktree of `commit` at `directory`, with the clone's untracked files linked in."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    where = shlex.quote(str(directory))
    _git_or_raise(c, clone, f"{NO_HOOKS} worktree add --detach --quiet {where} {commit}", "git worktree add")
    try:
        listed = _git_or_raise(c, clone, "ls-files -z --others --directory", "git ls-files --others")
        linked = links_to_make(parse_untracked(listed), clone, directory.parent)
        for entry in linked:
            target = directory / entry
            if os.path.lexists(target):  # the commit has it: the commit's wins
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(clone / entry)
        staged = _git_or_raise(c, clone, "ls-files -z --stage", "git ls-files --stage")
        for module in parse_gitlinks(staged):  # the worktree holds an empty directory for each
            target = directory / module
            if (clone / module).is_dir() and target.is_dir() and not any(target.iterdir()):
                target.rmdir()
                target.symlink_to(clone / module)
    except (SnapshotError, OSError):
        remove(c, clone, directory)
        raise
    return Snapshot(directory, commit)


def remove(c: Context, clone: Path, directory: Path) -> None:
    """Delete the tree (its links only, never what they point to) and git's record of it."""
    shutil.rmtree(directory, ignore_errors=True)
    git(c, clone, "worktree prune")
