"""The journal as shared memory: every apply's final entry is also a git note on its commit.

The notes live in `refs/notes/blumeops` (`NOTES_REF`). One note per commit holds the entries
of every apply of that commit as JSON lines - the very line the journal holds, redacted the
same way. The ref is pushed to the configured remote (`blumeops.git.remote`, default origin),
so every clone can read what every other clone applied.

    record(c, root, entry)   after an apply's final journal line: add the line to its commit's
                             note (locally) and queue the entry as unpublished in
                             `<state_dir>/notes.json`
    publish(c, root)         push the notes ref, with a short timeout (`blumeops.notes.timeout`,
                             default 10 s); when the remote holds notes this clone lacks (another
                             clone pushed), fetch them, merge with `cat_sort_uniq` and push once more.
                             Success empties the queue; failure leaves it (the entries show as
                             unpublished) and returns one sentence. Never raises, never blocks an apply.
    sync(c, root, fetch=)    what `history` and `pending` run first: retry the push when something
                             is queued (no network otherwise), fetch the remote's notes when asked
                             (`--fetch`), and merge a fetched copy into the local ref.
    entries(c, root, head)   the notes' entries newest first, read from the notes ref's own history
                             (`git log -p`, a page of notes commits at a time), so `history --limit 20`
                             reads about 20 notes commits, never every note.

Fetched notes land in `refs/notes/blumeops-remote` (`FETCHED_REF`) and are merged from there, so
`git config --add remote.origin.fetch +refs/notes/blumeops:refs/notes/blumeops-remote` makes every
plain `git fetch` bring them too. Every git command goes through `git_state.git`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks.config import state_dir
from blumeops_tasks.gitops import git_state, journal
from blumeops_tasks.redaction import redact

NOTES_REF = "refs/notes/blumeops"
FETCHED_REF = "refs/notes/blumeops-remote"
STATE_NAME = "notes.json"
TIMEOUT = 10.0  # seconds a push or fetch of the notes may take (blumeops.notes.timeout)
LOCK_TIMEOUT = 10.0
PAGE = 64  # notes commits read per `git log` call
ZERO = "0" * 40
# `git log` arguments that print each notes commit's diff and nothing a user's config could add.
LOG_ARGS = (
    "log -p --root --no-merges --no-renames --no-color --no-ext-diff --no-textconv --no-notes "
    "--no-show-signature -U0 --format=%x1e%H"
)
# Where an entry was seen, as `history` shows it.
PUBLISHED, UNPUBLISHED, NOTES_ONLY, LOCAL_ONLY = "published", "unpublished", "notes-only", "local-only"


# ---- pure parts ---------------------------------------------------------------------------------


def parse_patches(text: str) -> list[list[str]]:
    """`git log -p` output of the notes ref (records start with \\x1e) -> per notes commit, newest
    first, the lines it added to notes: added lines minus removed ones, so a note moved to another
    path (git's fan-out of a large notes tree) adds nothing."""
    commits: list[list[str]] = []
    for block in text.split("\x1e")[1:]:
        added: list[str] = []
        removed: set[str] = set()
        for line in block.split("\n"):
            if line.startswith(("+++ ", "--- ")):
                continue
            if line.startswith("+"):
                added.append(line[1:])
            elif line.startswith("-"):
                removed.add(line[1:])
        commits.append([line for line in dict.fromkeys(added) if line.strip() and line not in removed])
    return commits


def shared_state(entry: Mapping[str, Any], sources: Mapping[str, set[str]], unpublished: set[str]) -> str:
    """How far an entry is shared: unpublished (queued, not pushed yet), published (in this
    journal and in the notes), notes-only (applied from another clone, or this journal lost it),
    local-only (in no note: a started line, an apply with no commit, or older than the notes)."""
    apply_id = str(entry.get("apply_id") or "")
    if apply_id and apply_id in unpublished:
        return UNPUBLISHED
    seen = sources.get(apply_id, set()) if apply_id else set()
    if "notes" in seen:
        return PUBLISHED if "journal" in seen else NOTES_ONLY
    return LOCAL_ONLY


def reason(stderr: str, fallback: str = "git failed") -> str:
    """The line of git's stderr that says what went wrong ("fatal: ...", "error: ...", "! [rejected]")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:", "! [rejected]", "! [remote rejected]")):
            return line.removeprefix("fatal: ").removeprefix("error: ")
    return lines[0] if lines else fallback


def unpublished_message(count: int, remote: str, why: str) -> str:
    entries = "1 journal entry stays" if count == 1 else f"{count} journal entries stay"
    return redact(
        f"Could not push the journal notes to {remote} ({why}); {entries} unpublished here "
        f"(shown as such by `inv history`), and the next blumeops task retries the push."
    )


# ---- the state file: unpublished entries, the last fetch ---------------------------------------


def state_path(c: Context) -> Path:
    return state_dir(c) / STATE_NAME


def load_state(path: Path) -> dict[str, Any]:
    """The state file ({} when missing or unreadable): `unpublished` entries, `fetched` time."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(path: Path, data: Mapping[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


@contextlib.contextmanager
def _locked(c: Context) -> Iterator[Path]:
    """The state file, held by its lock (the notes ref's local updates happen under it too)."""
    from filelock import FileLock

    path = state_path(c)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT, thread_local=False):
        yield path


def unpublished_ids(c: Context) -> set[str]:
    return {str(item.get("apply_id")) for item in load_state(state_path(c)).get("unpublished") or []}


def _timeout(c: Context) -> float:
    settings = c.config.get("blumeops", {}).get("notes") or {}
    try:
        return float(settings.get("timeout") or TIMEOUT)
    except (TypeError, ValueError):
        return TIMEOUT


# ---- git ------------------------------------------------------------------------------------------


def _committing(c: Context, root: Path, args: str) -> tuple[int, str, str]:
    """git for a command that makes a notes commit; when git has no identity configured, once more
    with one naming this user and machine (the notes commit's author, not the entry's)."""
    code, out, err = git_state.git(c, root, args)
    if code and ("tell me who you are" in err or "empty ident" in err or "auto-detect" in err):
        import getpass
        import socket

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid{os.getuid()}"
        email = f"{user}@{socket.gethostname()}"
        identity = f"-c user.name={shlex.quote(user)} -c user.email={shlex.quote(email)}"
        code, out, err = git_state.git(c, root, f"{identity} {args}")
    return code, out, err


def refs(c: Context, root: Path) -> dict[str, str]:
    """{ref: sha} of the local notes ref and the fetched copy, those that exist."""
    listing = f"for-each-ref {shlex.quote('--format=%(refname)%09%(objectname)')} {NOTES_REF} {FETCHED_REF}"
    code, out, _err = git_state.git(c, root, listing)
    found: dict[str, str] = {}
    for line in out.splitlines() if code == 0 else []:
        name, _, sha = line.partition("\t")
        if name in (NOTES_REF, FETCHED_REF) and sha:
            found[name] = sha
    return found


def write_note(c: Context, root: Path, commit: str, line: str) -> str | None:
    """Add one JSON line to `commit`'s note (read, append, `git notes add -f`); None when written
    (or already there), else why not."""
    code, out, _err = git_state.git(c, root, f"notes --ref={NOTES_REF} show {shlex.quote(commit)}")
    lines = [text for text in out.splitlines() if text.strip()] if code == 0 else []
    if line in lines:
        return None
    handle, name = tempfile.mkstemp(prefix="blumeops-note-", suffix=".jsonl")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write("\n".join([*lines, line]) + "\n")
        code, _out, err = _committing(c, root, f"notes --ref={NOTES_REF} add -f -F {shlex.quote(name)} {commit}")
    finally:
        Path(name).unlink()
    return None if code == 0 else reason(err, "git notes add failed")


def fetch(c: Context, root: Path, remote: str) -> str | None:
    """Fetch the remote's notes into FETCHED_REF (a remote with no notes yet is fine); None, or why not."""
    code, _out, err = git_state.git(
        c,
        root,
        f"fetch -q --no-tags --no-write-fetch-head {shlex.quote(remote)} +{NOTES_REF}:{FETCHED_REF}",
        timeout=_timeout(c),
    )
    if code == 0 or "couldn't find remote ref" in err:
        return None
    return reason(err, "git fetch failed")


def merge_fetched(c: Context, root: Path) -> tuple[str | None, str | None]:
    """Merge the fetched notes into the local ref (`cat_sort_uniq`: both clones' lines of a commit's
    note are kept); (the local ref's sha afterwards, why a merge failed). Call it under `_locked`."""
    found = refs(c, root)
    local, fetched = found.get(NOTES_REF), found.get(FETCHED_REF)
    if fetched is None or fetched == local:
        return local, None
    if local is None:
        code, _out, err = git_state.git(c, root, f"update-ref {NOTES_REF} {fetched} {ZERO}")
    else:
        code, _out, err = git_state.git(c, root, f"merge-base --is-ancestor {fetched} {local}")
        if code == 0:
            return local, None
        code, _out, err = _committing(c, root, f"notes --ref={NOTES_REF} merge -q -s cat_sort_uniq {FETCHED_REF}")
    if code != 0:
        return local, reason(err, "git notes merge failed")
    return refs(c, root).get(NOTES_REF), None


# ---- the flow ---------------------------------------------------------------------------------------


def record(c: Context, root: Path, entry: Mapping[str, Any]) -> str | None:
    """After an apply's final journal line: write it into its commit's note and queue it as
    unpublished; None, or one sentence when it could not even be queued (the journal line stands).
    A `started` line, or an entry with no commit, is no note. A note that cannot be written now is
    written by the next `publish`."""
    from filelock import Timeout

    commit, apply_id = entry.get("commit"), entry.get("apply_id")
    if not commit or not apply_id or entry.get("result") == journal.STARTED:
        return None
    line = journal.encode(entry).strip()
    try:
        with _locked(c) as path:
            noted = write_note(c, root, str(commit), line) is None
            data = load_state(path)
            queue = list(data.get("unpublished") or [])
            queue.append({"apply_id": str(apply_id), "commit": str(commit), "noted": noted, "line": line})
            data["unpublished"] = queue
            _save_state(path, data)
    except (OSError, Timeout) as error:
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return redact(
            f"Could not queue this apply's journal note in {state_path(c)} ({why}); the journal line "
            f"stands, but other clones will not see this apply."
        )
    return None


def publish(c: Context, root: Path) -> str | None:
    """Push the notes ref when entries are queued; None when they were published (or none were
    queued: then no network at all), else one sentence (they stay queued, shown as unpublished).
    Never raises for a failure of git, the network or the state file."""
    from filelock import Timeout

    try:
        return _publish(c, root)
    except (OSError, Timeout) as error:
        why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return redact(f"Could not publish the journal notes ({why}); the next blumeops task retries.")


def _publish(c: Context, root: Path) -> str | None:
    remote = git_state.remote_name(c)
    path = state_path(c)
    if not load_state(path).get("unpublished"):
        return None
    with _locked(c) as path:
        data = load_state(path)
        queue = list(data.get("unpublished") or [])
        problems: list[str] = []
        for item in queue:
            if not item.get("noted"):
                problem = write_note(c, root, str(item.get("commit")), str(item.get("line")))
                item["noted"] = problem is None
                if problem:
                    problems.append(f"cannot write the note on {str(item.get('commit'))[:12]}: {problem}")
        data["unpublished"] = queue
        _save_state(path, data)
        sending = {str(item.get("apply_id")) for item in queue if item.get("noted")}
        head = refs(c, root).get(NOTES_REF)
    if not queue:
        return None
    if not sending or head is None:
        return unpublished_message(len(queue), remote, problems[0] if problems else "no notes ref")
    problem = _push(c, root, remote, head)
    if problem:
        return unpublished_message(len(queue), remote, problem)
    with _locked(c) as path:
        data = load_state(path)
        left = [item for item in data.get("unpublished") or [] if str(item.get("apply_id")) not in sending]
        data["unpublished"] = left
        _save_state(path, data)
    return unpublished_message(len(left), remote, problems[0]) if problems and left else None


def _push(c: Context, root: Path, remote: str, head: str) -> str | None:
    """Push the notes commit `head` to the remote's notes ref; when another clone pushed notes first,
    fetch them, merge (`cat_sort_uniq` keeps both) and push once more. None, or why it failed."""
    for attempt in (1, 2):
        code, _out, err = git_state.git(
            c, root, f"push -q --no-verify {shlex.quote(remote)} {head}:{NOTES_REF}", timeout=_timeout(c)
        )
        if code == 0:
            return None
        if attempt == 2 or "[rejected]" not in err:
            return reason(err, "git push failed")
        problem = fetch(c, root, remote)
        if problem:
            return problem
        with _locked(c):
            merged, problem = merge_fetched(c, root)
        if problem or merged is None:
            return problem or "no notes ref"
        head = merged
    return None


@dataclass
class Shared:
    """What `history` and `pending` know about the notes before reading them."""

    remote: str
    head: str | None = None  # the local notes ref (None: no notes here)
    unpublished: set[str] = field(default_factory=set)
    fetched: str | None = None  # when `--fetch` last fetched the notes
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": NOTES_REF,
            "remote": self.remote,
            "fetched": self.fetched,
            "unpublished": len(self.unpublished),
            "problems": list(self.problems),
        }


def sync(c: Context, root: Path, *, fetch_now: bool = False) -> Shared:
    """Before reading: retry a queued push, fetch when asked, merge a fetched copy. Never raises
    (a failure is one sentence in `problems`); no network unless something is queued or asked."""
    from filelock import Timeout

    shared = Shared(git_state.remote_name(c))
    try:
        problem = publish(c, root)
        if problem:
            shared.problems.append(problem)
        if fetch_now:
            problem = fetch(c, root, shared.remote)
            if problem:
                shared.problems.append(
                    redact(
                        f"Could not fetch the journal notes from {shared.remote} ({problem}); "
                        f"showing the entries this clone already has."
                    )
                )
            else:
                with _locked(c) as path:
                    data = load_state(path)
                    data["fetched"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                    _save_state(path, data)
        found = refs(c, root)
        shared.head = found.get(NOTES_REF)
        if found.get(FETCHED_REF) not in (None, shared.head):
            with _locked(c):
                shared.head, problem = merge_fetched(c, root)
            if problem:
                shared.problems.append(redact(f"Could not merge the fetched journal notes ({problem})."))
    except (OSError, Timeout) as error:
        why = getattr(error, "strerror", None) or error
        shared.problems.append(f"Could not update the journal notes state ({why}).")
    state = load_state(state_path(c))
    shared.unpublished = {str(item.get("apply_id")) for item in state.get("unpublished") or []}
    shared.fetched = state.get("fetched")
    return shared


def entries(c: Context, root: Path, head: str | None, *, page: int = PAGE) -> Iterator[dict[str, Any] | None]:
    """The notes' entries newest first (None for an unreadable line), read lazily from the history
    of the notes ref at `head`, `page` notes commits per git call."""
    if head is None:
        return
    skip = 0
    while True:
        code, out, _err = git_state.git(c, root, f"{LOG_ARGS} --skip={skip} -n {page} {head}")
        if code != 0:
            return
        commits = parse_patches(out)
        for added in commits:
            for line in reversed(added):
                yield journal.parse_line(line)
        if len(commits) < page:
            return
        skip += page


def annotate(
    chosen: Sequence[Mapping[str, Any]], sources: Mapping[str, set[str]], unpublished: set[str]
) -> list[dict[str, Any]]:
    """The entries with `shared` (see `shared_state`) added."""
    return [{**entry, "shared": shared_state(entry, sources, unpublished)} for entry in chosen]
