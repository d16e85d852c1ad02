"""Git facts the argocd tasks need, through the one git runner (`gitops.git_state.git`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from invoke.context import Context

from blumeops_tasks.argocd.app_state import FULL_SHA_LENGTH


class RevisionError(Exception):
    """One sentence: which revision, what is wrong, how to fix it."""


def _git(c: Context, repo: Path, args: str) -> tuple[int, str, str]:
    from blumeops_tasks.gitops.git_state import git

    code, out, err = git(c, repo, args)
    return code, (out or "").strip(), (err or "").strip()


def head(c: Context, repo: Path) -> str:
    """Local HEAD as a full SHA, or '' outside a git repository."""
    code, out, _ = _git(c, repo, "rev-parse HEAD")
    return out if code == 0 else ""


def expand(c: Context, repo: Path, revision: str) -> str:
    """A full 40-character SHA for `revision` (short SHA, tag, branch); unknown ones are refused."""
    code, out, _ = _git(c, repo, f"rev-parse --verify --quiet {shlex.quote(revision + '^{commit}')}")
    if code != 0 or len(out) != FULL_SHA_LENGTH:
        raise RevisionError(f"Revision {revision!r} is not a commit in this clone; check the SHA, or git fetch first.")
    return out


def remote_tip(c: Context, repo: Path, remote: str, branch: str) -> str:
    code, out, err = _git(c, repo, f"ls-remote --exit-code {shlex.quote(remote)} refs/heads/{shlex.quote(branch)}")
    if code != 0 or not out:
        reason = err.splitlines()[-1] if err else f"no branch {branch!r} there"
        raise RevisionError(
            f"Cannot read {branch!r} from remote {remote!r} ({reason}); check the remote and your network."
        )
    return out.split()[0]


def resolve_remote(c: Context, repo: Path, remote: str, revision: str) -> str:
    """The commit a branch, tag or HEAD names on `remote` (git ls-remote; an annotated tag peeled)."""
    code, out, err = _git(c, repo, f"ls-remote --exit-code {shlex.quote(remote)} {shlex.quote(revision)}")
    lines = [line.split() for line in out.splitlines() if line.strip()]
    if code != 0 or not lines:
        reason = err.splitlines()[-1] if err else f"nothing named {revision!r} there"
        raise RevisionError(f"Cannot resolve {revision!r} on remote {remote!r} ({reason}).")
    peeled = [sha for sha, ref in lines if ref.endswith("^{}")]
    return peeled[0] if peeled else lines[0][0]


def ensure_pushed(c: Context, repo: Path, sha: str, remote: str, branch: str) -> str:
    """Refuse unless `sha` is on `remote`/`branch` (the branch ArgoCD reads). Returns the remote tip."""
    tip = remote_tip(c, repo, remote, branch)
    if not on_branch(c, repo, sha, tip, remote=remote, branch=branch):
        raise RevisionError(
            f"Commit {sha[:12]} is not on {remote}/{branch}, the branch ArgoCD reads, so it can never be "
            f"deployed; git push {remote} {branch} first."
        )
    return tip


def on_branch(c: Context, repo: Path, sha: str, tip: str, *, remote: str, branch: str) -> bool:
    """Whether commit `sha` is `tip` (the remote branch's tip) or one of its ancestors; fetches the
    branch first when this clone does not have `tip` yet."""
    if tip == sha:
        return True
    code, _, _ = _git(c, repo, f"cat-file -e {tip}^{{commit}}")
    if code != 0:
        _git(c, repo, f"fetch --quiet {shlex.quote(remote)} {shlex.quote(branch)}")
    code, _, _ = _git(c, repo, f"merge-base --is-ancestor {sha} {tip}")
    return code == 0


def subject(c: Context, repo: Path, sha: str) -> str:
    """The commit's subject line, or '' when this clone does not have it (or `sha` is no SHA)."""
    if not is_sha(sha):
        return ""
    code, out, _ = _git(c, repo, f"log -1 --format=%s {shlex.quote(sha)} --")
    return out if code == 0 else ""


def is_sha(text: str) -> bool:
    """A full 40-character hexadecimal commit SHA (what ArgoCD records and accepts)."""
    return len(text) == FULL_SHA_LENGTH and all(ch in "0123456789abcdef" for ch in text)


def remote_url(c: Context, repo: Path, remote: str) -> str:
    code, out, _ = _git(c, repo, f"remote get-url {shlex.quote(remote)}")
    return out if code == 0 else ""


def repo_key(url: str) -> str:
    """host/path of a git URL, so https://h/o/r.git, ssh://git@h/o/r and git@h:o/r compare equal."""
    text = url.strip().rstrip("/")
    text = text.removesuffix(".git")
    if "://" in text:
        text = text.split("://", 1)[1]
        text = text.split("@", 1)[-1] if "@" in text.split("/", 1)[0] else text
        host, _, path = text.partition("/")
        host = host.split(":", 1)[0]  # drop a port
    elif "@" in text and ":" in text:
        host, _, path = text.split("@", 1)[1].partition(":")
    else:
        return text
    return f"{host.lower()}/{path.strip('/')}"


def same_repo(a: str, b: str) -> bool:
    return bool(a) and bool(b) and repo_key(a) == repo_key(b)
