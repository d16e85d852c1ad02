"""Git state for the guardrails: pure parsers over git's own output, plus thin readers.

Parsers take the text git prints (`status --porcelain=v2 --branch -z`, `log` with a fixed
format) and return plain data; the readers run git through the invoke Context.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoke.context import Context

# Layers whose apply can never use the working tree: ArgoCD deploys what is pushed, nothing else.
NO_DIRTY_OVERRIDE: frozenset[str] = frozenset({"argocd"})
# Dirty files named in a refusal; the rest are counted.
SHOWN_FILES = 3
# Keeps `git status` from taking the index lock (other git commands may run at the same time).
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


@dataclass(frozen=True)
class GitStatus:
    """What `git status --porcelain=v2 --branch` says about HEAD and the working tree."""

    oid: str | None  # None before the first commit
    branch: str | None  # None when HEAD is detached
    upstream: str | None
    ahead: int = 0
    behind: int = 0
    changed: tuple[str, ...] = ()  # modified, staged, deleted, renamed (both names), untracked, conflicted


@dataclass(frozen=True)
class Verdict:
    """The guard's decision for one layer; `problems` empty means the apply may go ahead."""

    layer: str
    dirty_files: tuple[str, ...] = ()
    upstream_problem: str = ""
    fixes: tuple[str, ...] = field(default=())

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_files)

    @property
    def clean(self) -> bool:
        return not self.dirty_files and not self.upstream_problem


def parse_status(text: str) -> GitStatus:
    """Parse `git status --porcelain=v2 --branch -z --untracked-files=all` output."""
    oid: str | None = None
    branch: str | None = None
    upstream: str | None = None
    ahead = behind = 0
    changed: list[str] = []
    records = text.split("\0")
    index = 0
    while index < len(records):
        record = records[index]
        index += 1
        if not record:
            continue
        if record.startswith("# "):
            key, _, value = record[2:].partition(" ")
            if key == "branch.oid":
                oid = None if value == "(initial)" else value
            elif key == "branch.head":
                branch = None if value == "(detached)" else value
            elif key == "branch.upstream":
                upstream = value
            elif key == "branch.ab":
                a, _, b = value.partition(" ")
                ahead, behind = int(a.lstrip("+")), int(b.lstrip("-"))
            continue
        kind = record[0]
        if kind == "1":
            changed.append(record.split(" ", 8)[8])
        elif kind == "2":
            changed.append(record.split(" ", 9)[9])
            if index < len(records):  # -z: the original path is the next record
                changed.append(records[index])
                index += 1
        elif kind == "u":
            changed.append(record.split(" ", 10)[10])
        elif kind == "?":
            changed.append(record[2:])
        # "!" (ignored) is not a change
    return GitStatus(oid, branch, upstream, ahead, behind, tuple(dict.fromkeys(changed)))


def path_in(path: str, prefixes: Iterable[str]) -> bool:
    """Whether a repo-relative path belongs to one of a layer's `paths` ("roles/" or "ansible.cfg")."""
    for prefix in prefixes:
        if prefix.endswith("/"):
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                return True
        elif path == prefix or path.startswith(prefix + "/"):
            return True
    return False


def upstream_problem(status: GitStatus) -> tuple[str, str]:  # noqa: PLR0911  # one case per state
    """(what is wrong, how to fix it) about HEAD versus its upstream; ("", "") when HEAD is pushed."""
    short = (status.oid or "")[:12]
    if status.oid is None:
        return "the repository has no commit yet", "commit and push the layer's files"
    if status.branch is None:
        return (
            f"HEAD is detached at {short}, so it has no upstream",
            "check out the pushed branch",
        )
    if status.upstream is None:
        return (
            f"branch {status.branch} has no upstream, so HEAD {short} is not known to be pushed",
            f"push it with `git push -u origin {status.branch}`",
        )
    if status.ahead and status.behind:
        return (
            f"HEAD {short} has diverged from {status.upstream} ({status.ahead} ahead, {status.behind} behind)",
            "rebase or merge, then push",
        )
    if status.ahead:
        return (
            f"HEAD {short} is {_commits(status.ahead)} ahead of {status.upstream}",
            "push first (`git push`)",
        )
    if status.behind:
        return (
            f"HEAD {short} is {_commits(status.behind)} behind {status.upstream}",
            "pull first (`git pull --ff-only`)",
        )
    return "", ""


def _commits(n: int) -> str:
    return f"{n} commit" if n == 1 else f"{n} commits"


def upstream_mismatch(status: GitStatus, upstream_ref: str | None, expected_ref: str) -> tuple[str, str]:
    """(what is wrong, fix) when HEAD's upstream is not the configured remote's branch: a local
    branch as upstream, or a pushed feature branch, is not what the homelab deploys from."""
    if status.branch is None or status.upstream is None or upstream_ref == expected_ref:
        return "", ""
    expected = expected_ref.removeprefix("refs/remotes/")
    shown = (upstream_ref or status.upstream).removeprefix("refs/remotes/").removeprefix("refs/heads/")
    kind = "the local branch " if (upstream_ref or "").startswith("refs/heads/") else ""
    return (
        f"branch {status.branch} tracks {kind}{shown}, not {expected} (the configured remote branch)",
        f"merge it into {expected.partition('/')[2]} and push, then apply from there "
        f"(or set blumeops.git.remote/blumeops.git.branch)",
    )


def evaluate(
    layer: str,
    paths: Sequence[str],
    status: GitStatus,
    *,
    upstream_ref: str | None = None,
    expected_ref: str | None = None,
) -> Verdict:
    """Decide the guard for one layer: its own dirty files count, files elsewhere do not; with
    `expected_ref`, an upstream other than the configured remote branch is a problem too."""
    dirty = tuple(path for path in status.changed if path_in(path, paths))
    problem, fix = upstream_problem(status)
    if not problem and expected_ref:
        problem, fix = upstream_mismatch(status, upstream_ref, expected_ref)
    if dirty and (not problem or (status.ahead and not status.behind)):
        fix = "commit and push them"
    elif dirty and status.oid and status.branch and status.upstream is None:
        fix = f"commit them and push with `git push -u origin {status.branch}`"
    elif dirty:
        fix = f"commit them, then {fix}"
    return Verdict(layer, dirty, problem, (fix,) if fix else ())


def outside(root: Path, paths: Mapping[str, str | Path]) -> list[tuple[str, Path]]:
    """(label, resolved path) for each path that is not inside the repository `root` (symlinks and
    `..` resolved): git cannot vouch for what such a file holds."""
    base = root.resolve()
    found: list[tuple[str, Path]] = []
    for label, value in paths.items():
        path = Path(value).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        if path != base and base not in path.parents:
            found.append((label, path))
    return found


def env_paths(name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The entries of a path-list environment variable (e.g. ANSIBLE_ROLES_PATH) the tool will
    read, labelled for the path guard: {"ANSIBLE_ROLES_PATH[1]": "/x"}."""
    value = (os.environ if environ is None else environ).get(name, "")
    entries = [entry for entry in value.split(os.pathsep) if entry.strip()]
    return {f"{name}[{index}]": entry for index, entry in enumerate(entries)}


def inside(root: Path, paths: Mapping[str, str | Path]) -> list[str]:
    """The repo-relative form of each path that is inside `root` (a directory ends with "/")."""
    base = root.resolve()
    found: list[str] = []
    for value in paths.values():
        path = Path(value).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        if base in path.parents:
            relative = path.relative_to(base).as_posix()
            found.append(f"{relative}/" if path.is_dir() else relative)
    return found


def describe(verdict: Verdict) -> str:
    """What is wrong, e.g. "uncommitted changes in roles/a.yml; HEAD abc is 1 commit ahead of origin/main"."""
    parts: list[str] = []
    if verdict.dirty_files:
        shown = ", ".join(verdict.dirty_files[:SHOWN_FILES])
        more = len(verdict.dirty_files) - SHOWN_FILES
        shown += f" (+{more} more)" if more > 0 else ""
        parts.append(f"uncommitted changes in {shown}")
    if verdict.upstream_problem:
        parts.append(verdict.upstream_problem)
    return "; ".join(parts)


def refusal(verdict: Verdict, *, overridable: bool) -> str:
    """One actionable sentence for a refused apply."""
    fix = "; ".join(verdict.fixes)
    if overridable:
        tail = f"{fix}, or re-run with --allow-dirty to apply the working tree anyway (the override is journaled)"
    else:
        tail = f"ArgoCD deploys only pushed commits, so {fix}" if verdict.layer == "argocd" else fix
    return f"Refusing to apply {verdict.layer}: {describe(verdict)}; {tail}."


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: str  # author date, ISO 8601
    subject: str

    def to_dict(self) -> dict[str, str]:
        return {"sha": self.sha, "author": self.author, "date": self.date, "subject": self.subject}


# `git log --format=` producing what `parse_log` reads: fields split by US, records by RS.
LOG_FORMAT = "%H%x1f%an%x1f%aI%x1f%s%x1e"


def parse_log(text: str) -> list[Commit]:
    commits: list[Commit] = []
    for raw in text.split("\x1e"):
        record = raw.strip("\n")
        if not record:
            continue
        fields = record.split("\x1f")
        if len(fields) == 4:
            commits.append(Commit(*fields))
    return commits


def parse_names(text: str) -> list[str]:
    """`git diff --name-only -z` output -> paths."""
    return [name for name in text.split("\0") if name]


def pathspec(paths: Sequence[str]) -> str:
    return " ".join(shlex.quote(path) for path in paths)


# ---- readers (git through the invoke Context) -------------------------------------------------


# Exit code `git` reports for a command stopped by its timeout (the code of coreutils' timeout).
TIMED_OUT = 124


def git(c: Context, root: Path, args: str, *, timeout: float | None = None) -> tuple[int, str, str]:
    """Run `git -C ROOT ARGS` captured, never shown (its output is data for the parsers, not for the
    operator), through the Context; (exit code, stdout, stderr). Every git command in the package uses it.

    With `timeout` (for the network: a push or fetch of the notes), git runs in its own session - no
    terminal, so ssh cannot stop at a prompt - and after `timeout` seconds its whole process group (ssh,
    remote helpers) is killed; the result is then (TIMED_OUT, out, "timed out after N s")."""
    from blumeops_tasks import shell

    command = f"git -C {shlex.quote(str(root))} {args}"
    if timeout is None:
        done = shell.run(c, command, env=GIT_ENV, hide=True, warn=True)
        return int(done.exited), done.stdout, done.stderr
    from invoke.exceptions import CommandTimedOut

    try:
        if type(c).run is Context.run:  # a real local Context: a runner that kills the whole group
            options = {"env": GIT_ENV, "hide": True, "warn": True, "in_stream": False, "timeout": timeout}
            result = c._run(_group_kill_runner(c), command, **options)
        else:
            result = shell.run(c, command, env=GIT_ENV, hide=True, warn=True, timeout=timeout)
        assert result is not None  # warn=True returns a Result
    except CommandTimedOut as stopped:
        return TIMED_OUT, stopped.result.stdout, f"timed out after {timeout:g} s"
    return int(result.exited), result.stdout, result.stderr


def _group_kill_runner(c: Context) -> Any:
    """invoke's Local runner in a new session (shell.GroupRunner) whose timeout kills the session's
    whole process group, not only its shell: ssh or a remote helper left alive would hold the pipes."""
    import signal

    from blumeops_tasks.shell import GroupRunner

    class GroupKillRunner(GroupRunner):
        def kill(self) -> None:
            process = getattr(self, "process", None)
            if process is None:
                super().kill()
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # the shell leads its session's group

    return GroupKillRunner(c)


def read_status(c: Context, root: Path) -> GitStatus:
    """The repository's status; a directory that is not a git work tree stops with one sentence."""
    code, out, err = git(c, root, "status --porcelain=v2 --branch -z --untracked-files=all")
    if code != 0:
        from blumeops_tasks.console import fail

        reason = (err.strip().splitlines() or ["git status failed"])[-1]
        fail(
            f"Cannot read the git state of {root} ({reason}); run from a clone of the repo or set blumeops.root to one."
        )
    return parse_status(out)


def resolve(c: Context, root: Path, ref: str) -> str | None:
    """The full SHA of a commit-ish, or None when it names no commit here."""
    code, out, _err = git(c, root, f"rev-parse --verify --quiet {shlex.quote(ref + '^{commit}')}")
    return out.strip() if code == 0 and out.strip() else None


def resolve_since(c: Context, root: Path, since: str, example: str) -> str:
    """The full SHA of a `--since` ref, or one sentence (with `example`, e.g. "--since=HEAD~3 or
    --since=origin/main") when it names no commit here."""
    base = resolve(c, root, since)
    if base is None:
        from blumeops_tasks.console import fail

        fail(f"{since!r} names no commit in {root}; pass --since=REF with a commit, branch or tag ({example}).")
    return base


def log(c: Context, root: Path, revisions: str, paths: Sequence[str]) -> list[Commit]:
    """Commits in `revisions` (e.g. "abc..HEAD") touching `paths`, newest first."""
    code, out, err = git(c, root, f"log --no-renames --format={LOG_FORMAT} {revisions} -- {pathspec(paths)}")
    if code != 0:
        from blumeops_tasks.console import fail

        reason = (err.strip().splitlines() or ["git log failed"])[-1]
        fail(f"Cannot read the history of {root} ({reason}); check that the clone is complete.")
    return parse_log(out)


def changed_since(c: Context, root: Path, base: str) -> list[str]:
    """Files that differ between commit `base` and HEAD (renames as delete + add)."""
    code, out, err = git(c, root, f"diff --no-renames --name-only -z {shlex.quote(base)} HEAD --")
    if code != 0:
        from blumeops_tasks.console import fail

        reason = (err.strip().splitlines() or ["git diff failed"])[-1]
        fail(f"Cannot list the files changed since {base[:12]} ({reason}).")
    return parse_names(out)


def upstream_ref(c: Context, root: Path) -> str | None:
    """The full ref HEAD's branch tracks (refs/remotes/origin/main, or refs/heads/x for a local one)."""
    code, out, _err = git(c, root, "rev-parse --symbolic-full-name @{upstream}")
    return out.strip() or None if code == 0 else None


def remote_name(c: Context) -> str:
    """The configured remote (`blumeops.git.remote`, default origin): applies come from its branch,
    and the journal's notes are pushed to it."""
    settings = c.config.get("blumeops", {}).get("git") or {}
    return str(settings.get("remote") or "origin")


def expected_upstream(c: Context, root: Path) -> str:
    """The configured remote branch applies come from: `blumeops.git.remote` (default origin) and
    `blumeops.git.branch` (default: the remote's default branch as the clone knows it, else main)."""
    settings = c.config.get("blumeops", {}).get("git") or {}
    remote = remote_name(c)
    branch = str(settings.get("branch") or "")
    if not branch:
        code, out, _err = git(c, root, f"symbolic-ref -q refs/remotes/{shlex.quote(remote)}/HEAD")
        prefix = f"refs/remotes/{remote}/"
        branch = out.strip().removeprefix(prefix) if code == 0 and out.strip().startswith(prefix) else "main"
    return f"refs/remotes/{remote}/{branch}"


def repo_key(c: Context, root: Path) -> str | None:
    """What every clone of this repository shares: its root commit (the oldest, when there are
    several); None before the first commit."""
    code, out, _err = git(c, root, "rev-list --max-parents=0 HEAD")
    roots = sorted(out.split()) if code == 0 else []
    return roots[0] if roots else None


def head_now(root: Path) -> str | None:
    """HEAD's commit read directly (no Context: it runs between an apply's tool commands)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **GIT_ENV},
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
