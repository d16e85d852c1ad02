"""`applying(...)`: the one guard every layer's apply runs inside.

    with applying(c, LAYER, task="hosts.provision", targets=["indri"], allow_dirty=allow_dirty) as record:
        plan = ...; record.set_plan(plan)
        ...confirm, run the tool; raise Exit(code=N) on failure...

On enter: the git-state guard over the layer's `paths` (refuses uncommitted changes in them,
or HEAD not on its upstream; `allow_dirty` overrides it except for layers in
`git_state.NO_DIRTY_OVERRIDE`), then the layer's apply lock. On exit: one journal line with
the result - succeeded, no-changes (`record.mark("no-changes")`), failed (non-zero Exit, a
tool's UnexpectedExit, any other exception), declined (`console.Declined`) or interrupted
(KeyboardInterrupt, re-raised). A refusal by the guard or the lock is journaled as refused.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit, UnexpectedExit

from blumeops_tasks import console
from blumeops_tasks.config import repo_root, state_dir
from blumeops_tasks.gitops import git_state, journal
from blumeops_tasks.gitops.lock import ApplyLock, Holder, LockRefused
from blumeops_tasks.layer import Layer, owned_paths
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.redaction import redact

MARKS: frozenset[str] = frozenset({"no-changes"})
EXIT_INTERRUPTED = 130
DIRTY_FILES_JOURNALED = 20


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def current_machine() -> str:
    return socket.gethostname()


def overridable(layer: Layer) -> bool:
    """Whether `--allow-dirty` may override the git-state guard for this layer."""
    return layer.name not in git_state.NO_DIRTY_OVERRIDE


class ApplyRecord:
    """What the caller tells the journal while the apply runs."""

    def __init__(self, layer: str, task: str, targets: Iterable[str]) -> None:
        self.layer = layer
        self.task = task
        self.targets: list[str] = list(targets)
        self.plan_counts: dict[str, int] | None = None
        self.marked: str | None = None
        self.message = ""
        self.commit: str | None = None
        self.branch: str | None = None
        self.dirty = False
        self.dirty_files: tuple[str, ...] = ()
        self.allow_dirty_override = False

    def set_plan(self, plan: LayerPlan) -> None:
        """Record the plan's change counts (create/update/delete/replace/run)."""
        self.plan_counts = plan.counts()

    def set_targets(self, targets: Iterable[str]) -> None:
        """Replace the targets (e.g. once the inventory has resolved a pattern to hosts)."""
        self.targets = list(targets)

    def mark(self, result: str) -> None:
        """Mark a normal exit with a more precise result: "no-changes" (the plan was empty)."""
        if result not in MARKS:
            raise ValueError(f"unknown mark {result!r}; known: {', '.join(sorted(MARKS))}")
        self.marked = result

    def review(self, plan: LayerPlan, *, question: str, action: str, yes: bool, unchanged: str) -> bool:
        """The middle every apply shares: journal the plan's counts, show the plan, stop on a failed
        preview, end early (journaled as no-changes) when nothing would change, else confirm (default
        No). True when the caller should go on and apply."""
        from blumeops_tasks import plan as plan_model

        self.set_plan(plan)
        plan_model.render([plan])
        if plan.error:
            console.fail(f"Preview failed, nothing applied: {plan.error}.")
        if not plan.has_changes:
            self.mark("no-changes")
            console.out(unchanged, style="green")
            return False
        console.confirm(question, yes=yes, action=action)
        return True

    def note(self, message: str) -> None:
        """A short line for the journal's `message` (redacted like everything else)."""
        self.message = message


class ApplySession:
    """Context manager returned by `applying`; see the module docstring."""

    def __init__(
        self,
        c: Context,
        layer: Layer,
        *,
        task: str,
        targets: Iterable[str] = (),
        allow_dirty: bool = False,
    ) -> None:
        self.c = c
        self.layer = layer
        self.allow_dirty = allow_dirty
        self.record = ApplyRecord(layer.name, task, targets)
        self._lock: ApplyLock | None = None
        self._sigint_seen = False
        self._previous_sigint: Any = None
        self._started = time.monotonic()
        self._time = now_iso()
        self._user = current_user()
        self._machine = current_machine()

    # -- enter --------------------------------------------------------------------------------

    def __enter__(self) -> ApplyRecord:
        self._started = time.monotonic()
        self._time = now_iso()
        root = repo_root(self.c)
        status = git_state.read_status(self.c, root)
        verdict = git_state.evaluate(self.layer.name, owned_paths(self.c, self.layer), status)
        record = self.record
        record.commit = status.oid
        record.branch = status.branch
        record.dirty = verdict.dirty
        record.dirty_files = verdict.dirty_files[:DIRTY_FILES_JOURNALED]
        if not verdict.clean:
            may_override = overridable(self.layer)
            if self.allow_dirty and may_override:
                record.allow_dirty_override = True
                console.note(
                    f"{self.layer.name}: --allow-dirty overrides the git-state guard "
                    f"({git_state.describe(verdict)}); "
                    f"this apply is journaled as dirty."
                )
            else:
                message = git_state.refusal(verdict, overridable=may_override)
                if self.allow_dirty and not may_override:
                    message = message.rstrip(".") + f" (--allow-dirty does not apply to {self.layer.name})."
                self._journal("refused", 1, message)
                console.fail(message)
        lock = ApplyLock(state_dir(self.c), self.layer.name)
        holder = Holder(self._user, self._machine, os.getpid(), self._time, record.task, self.layer.name)
        try:
            lock.acquire(holder)
        except LockRefused as refused:
            self._journal("refused", 1, refused.message)
            console.fail(refused.message)
        self._lock = lock
        self._watch_sigint()
        return record

    def _watch_sigint(self) -> None:
        """Remember a Ctrl-C even when invoke swallows it (it forwards ^C to the running tool and
        returns the tool's failed result), so the journal says interrupted, not failed."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            self._sigint_seen = True
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt

        self._previous_sigint = previous
        signal.signal(signal.SIGINT, on_sigint)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    # -- exit ---------------------------------------------------------------------------------

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore_sigint()
        try:
            result, code, message = classify(exc, self.record.marked)
            if self._sigint_seen and result in {"failed", "declined"}:
                result, message = "interrupted", f"interrupted (Ctrl-C); {message}"
            self._journal(result, code, "; ".join(m for m in (self.record.message, message) if m))
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _journal(self, result: str, code: int, message: str) -> None:
        record = self.record
        entry: dict[str, Any] = {
            "time": self._time,
            "user": self._user,
            "machine": self._machine,
            "layer": self.layer.name,
            "task": record.task,
            "targets": list(record.targets),
            "commit": record.commit,
            "branch": record.branch,
            "dirty": record.dirty,
            "dirty_files": list(record.dirty_files),
            "allow_dirty_override": record.allow_dirty_override,
            "plan_counts": record.plan_counts,
            "result": result,
            "exit_code": code,
            "duration_s": round(time.monotonic() - self._started, 3),
            "message": redact(message),
        }
        try:
            journal.append(journal.journal_path(self.c), entry)
        except Exception as error:  # the apply's own outcome matters more than its journal line
            console.error(f"Could not write the apply journal ({type(error).__name__}: {error}).")


def classify(  # noqa: PLR0911  # one return per way a block can end
    exc: BaseException | None, marked: str | None
) -> tuple[str, int, str]:
    """(result, exit code, message) for how the `with` block ended."""
    if exc is None:
        return marked or "succeeded", 0, ""
    if isinstance(exc, console.Declined):
        return "declined", int(exc.code or 1), str(exc.message or "not confirmed")
    if isinstance(exc, Exit):
        if not exc.code:
            return marked or "succeeded", 0, str(exc.message or "")
        return "failed", int(exc.code), str(exc.message or f"exit code {exc.code}")
    if isinstance(exc, UnexpectedExit):
        result = exc.result
        return "failed", int(result.exited or 1), f"`{result.command}` failed with exit code {result.exited}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED, "interrupted (Ctrl-C)"
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else 1
        return ("succeeded" if code == 0 else "failed"), code, f"exited with code {code}"
    text = str(exc).strip().splitlines()
    return "failed", 1, f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def applying(
    c: Context,
    layer: Layer,
    *,
    task: str,
    targets: Iterable[str] = (),
    allow_dirty: bool = False,
) -> ApplySession:
    """Guard, lock and journal one apply of `layer`; use as `with applying(...) as record:`."""
    return ApplySession(c, layer, task=task, targets=targets, allow_dirty=allow_dirty)


def journal_file(c: Context) -> Path:
    return journal.journal_path(c)
