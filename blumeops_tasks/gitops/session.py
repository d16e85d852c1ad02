"""`applying(...)`: the one guard every layer's apply runs inside.

    with applying(c, LAYER, task="hosts.provision", targets=["indri"], allow_dirty=allow_dirty,
                  tags=tags, limit=limit, plan=plan_digest, paths={"inventory": p.inventory}) as record:
        plan = ...
        if not record.review(plan, question=..., action=..., yes=yes, unchanged=...):
            return
        ...run the tool through shell.run; raise Exit(code=N) on failure...

On enter, in this order, before anything can change:
1. the git-state guard over the layer's `paths` and the given `paths` (refuses uncommitted
   changes in them, a file outside the repository, HEAD not on its upstream, or an upstream that
   is not the configured remote branch; `allow_dirty` overrides it - journaled with the reason -
   except for layers in `git_state.NO_DIRTY_OVERRIDE`);
2. the layer's apply lock, shared by every clone of the repository on this machine;
3. a `started` journal line, fsynced: an apply that cannot journal refuses here, and a SIGKILL
   later still leaves this line as evidence;
4. SIGINT, SIGTERM and SIGHUP handlers, and a `shell.Tracker`: every tool then runs in its own
   process group, which a signal stops as a whole (SIGKILL after `blumeops.stop_grace` seconds, default 10), and
   which the lock's holder file names while it runs.

Inside the block, a layer whose tools read the repo's files calls `record.snapshot()` first: the
apply then runs from a detached worktree of the commit it journals (gitops/snapshot.py; the
layers' paths follow through `config.source_path`), so a `git pull`, checkout or commit in the
clone while a tool runs cannot mix two commits (journaled `"source": "snapshot"`). An apply whose
`--allow-dirty` let uncommitted files through runs from the working tree instead (`"source":
"working tree"`): there HEAD is checked before every tool and at the end, and a move stops the
next tool and journals the apply as failed.

On exit: one journal line with the result - succeeded, no-changes (`record.mark("no-changes")`),
rolled-back (`record.rolled_back(commit)`: the targets run an older commit than HEAD, on purpose),
failed (non-zero Exit, a tool's UnexpectedExit, any other exception, or HEAD moved during an
apply run from the working tree), declined (`console.Declined`), refused (the guard, the lock, a
path outside the repo, a plan digest that no longer matches, a snapshot that cannot be made) or
interrupted (a signal: exit 130 SIGINT, 143 SIGTERM, 129 SIGHUP). The journal line shares the
started line's `apply_id`. It is also written as a git note on the applied commit (`gitops.notes`)
and, once the lock is released, pushed to the configured remote with a short timeout; a push that
fails leaves the entry unpublished (retried by the next task), never the apply failed.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit, UnexpectedExit

from blumeops_tasks import console, shell
from blumeops_tasks.config import SOURCE_ROOT, repo_path, repo_root
from blumeops_tasks.gitops import git_state, journal, notes
from blumeops_tasks.gitops import snapshot as snapshots
from blumeops_tasks.gitops.lock import ApplyLock, Holder, LockRefused, default_lock_root, group_alive
from blumeops_tasks.gitops.snapshot import Snapshot
from blumeops_tasks.layer import Layer, owned_paths
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.redaction import redact

if TYPE_CHECKING:
    from blumeops_tasks.preflight import CheckSpec

MARKS: frozenset[str] = frozenset({"no-changes"})
EXIT_INTERRUPTED = 130
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
DIRTY_FILES_JOURNALED = 20
STOP_GRACE = 10.0  # seconds a signalled tool group gets before SIGKILL (blumeops.stop_grace)


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


def signal_exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + int(signum)


def lock_directory(c: Context, root: Path) -> Path:
    """`<lock_root>/<root commit>`: the same directory for every clone of the repo on this machine."""
    configured = c.config.get("blumeops", {}).get("lock_dir")
    base = repo_path(c, str(configured)) if configured else default_lock_root()
    key = git_state.repo_key(c, root)
    if key is None:  # no commit yet: nothing to share, keep it per clone
        import hashlib

        key = "clone-" + hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return base / key


def git_verdict(c: Context, layer: Layer) -> git_state.Verdict:
    """The git-state guard's verdict for `layer` now: its files committed, HEAD pushed to the
    configured remote branch."""
    root = repo_root(c)
    status = git_state.read_status(c, root)
    upstream = git_state.upstream_ref(c, root) if status.upstream else None
    return git_state.evaluate(
        layer.name,
        owned_paths(c, layer),
        status,
        upstream_ref=upstream,
        expected_ref=git_state.expected_upstream(c, root),
    )


def git_check(c: Context, layer: Layer, *, allow_dirty: bool = False) -> CheckSpec:
    """The git state (dirty, unpushed, wrong branch) as a preflight row, so it is shown with the
    other preflight failures instead of after them: fail, or warn when `allow_dirty` will override it."""
    from blumeops_tasks import preflight as runner

    def run() -> runner.Outcome:
        try:
            verdict = git_verdict(c, layer)
        except Exit as stop:
            return runner.failed(str(stop.message or "cannot read the git state"), "run from a clone of the repo")
        if verdict.clean:
            return runner.ok("layer files committed; HEAD is on the configured remote branch")
        what, fix = git_state.describe(verdict), "; ".join(verdict.fixes)
        if allow_dirty and overridable(layer):
            return runner.warn(f"{what} (overridden by --allow-dirty, journaled)", fix)
        return runner.failed(what, fix)

    return runner.CheckSpec(layer.name, "git state", run)


class Refused(Exit):
    """The apply was refused before changing anything (journaled as refused)."""


class Interrupted(KeyboardInterrupt):
    """A SIGINT, SIGTERM or SIGHUP arrived while no tool was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(SIGNAL_NAMES.get(signal.Signals(signum), f"signal {signum}"))
        self.signum = signum


class ApplyRecord:
    """What the caller tells the journal while the apply runs."""

    def __init__(self, layer: str, task: str, targets: Iterable[str]) -> None:
        self.layer = layer
        self.task = task
        self.targets: list[str] = list(targets)
        self.tags: list[str] = []
        self.limit: str | None = None
        self.plan_counts: dict[str, int] | None = None
        self.plan_digest: str | None = None
        self.expected_digest: str | None = None
        self.marked: str | None = None
        self.deployed: str | None = None
        self.message = ""
        self.commit: str | None = None
        self.branch: str | None = None
        self.upstream: str | None = None
        self.dirty = False
        self.dirty_files: tuple[str, ...] = ()
        self.allow_dirty_override = False
        self.override_reasons: list[str] = []
        self._session: ApplySession | None = None

    def set_plan(self, plan: LayerPlan) -> None:
        """Record the plan's change counts (create/update/delete/replace/run) and digest; with
        `--plan=DIGEST`, refuse (journaled as refused) a plan whose digest is another."""
        self.plan_counts = plan.counts()
        self.plan_digest = plan.digest()
        if not plan.error:
            self.check_digest(plan)

    def set_targets(self, targets: Iterable[str]) -> None:
        """Replace the targets (e.g. once the inventory has resolved a pattern to hosts)."""
        self.targets = list(targets)

    def set_scope(self, *, tags: str | Iterable[str] | None = None, limit: str | None = None) -> None:
        """What the run was narrowed to: tags (a tagged run is never a baseline for `pending`) and limit."""
        self.tags = split_tags(tags)
        self.limit = limit or None

    def mark(self, result: str) -> None:
        """Mark a normal exit with a more precise result: "no-changes" (the plan was empty)."""
        if result not in MARKS:
            raise ValueError(f"unknown mark {result!r}; known: {', '.join(sorted(MARKS))}")
        self.marked = result

    def rolled_back(self, commit: str) -> None:
        """Mark a normal exit as a rollback: the targets now run `commit`, older than HEAD on
        purpose. Journaled as "rolled-back" with `deployed`, so `pending` counts from `commit`,
        never from HEAD ('' when no commit of this repo is known: then it is no baseline at all)."""
        self.marked = journal.ROLLED_BACK
        self.deployed = commit or None

    def guard_paths(self, paths: Mapping[str, str | Path]) -> None:
        """Refuse (journaled as refused) when a file the apply will use - an inventory, a roles
        path, a playbook - lies outside the repository or is uncommitted; `--allow-dirty`
        overrides it (not for argocd), journaled with the reason."""
        if self._session is None:
            raise RuntimeError("guard_paths is for a record returned by `with applying(...)`")
        self._session.guard_paths(paths)

    def check_digest(self, plan: LayerPlan) -> None:
        """With `--plan=DIGEST`, refuse when the plan just previewed is not the one reviewed."""
        from blumeops_tasks.plan import digest_matches, short

        if self.expected_digest is None or digest_matches(plan, self.expected_digest):
            return
        raise Refused(
            redact(
                f"Refusing to apply {self.layer}: the plan changed since it was reviewed "
                f"(--plan={self.expected_digest}, now {plan.digest()}); read the new plan above "
                f"and re-run with --plan={short(plan)} if it is right."
            ),
            code=1,
        )

    def review(self, plan: LayerPlan, *, question: str, action: str, yes: bool, unchanged: str) -> bool:
        """The middle every apply shares: journal the plan's counts and digest, show the plan, stop
        on a failed preview, refuse a plan other than the `--plan` digest, end early (journaled as
        no-changes) when nothing would change, else confirm (default No). True: go on and apply."""
        from blumeops_tasks import plan as plan_model

        plan_model.render([plan])
        self.set_plan(plan)
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

    def snapshot(self) -> Path:
        """Run the rest of the apply from a detached worktree of the journaled commit (made once) and
        return its root; the layers' paths (`config.source_path`) point into it until the apply ends.
        With uncommitted files let through by `--allow-dirty`, the working tree is what is applied:
        its root is returned. A snapshot that cannot be made refuses the apply (journaled)."""
        if self._session is None:
            raise RuntimeError("snapshot is for a record returned by `with applying(...)`")
        return self._session.snapshot()


def split_tags(tags: str | Iterable[str] | None) -> list[str]:
    if not tags:
        return []
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    return [tag.strip() for tag in items if tag and tag.strip()]


class ApplySession:
    """Context manager returned by `applying`; see the module docstring."""

    def __init__(  # every keyword is one fact the journal records
        self,
        c: Context,
        layer: Layer,
        *,
        task: str,
        targets: Iterable[str] = (),
        allow_dirty: bool = False,
        tags: str | Iterable[str] | None = None,
        limit: str | None = None,
        plan: str | None = None,
        paths: Mapping[str, str | Path] | None = None,
    ) -> None:
        self.c = c
        self.layer = layer
        self.allow_dirty = allow_dirty
        self.record = ApplyRecord(layer.name, task, targets)
        self.record.set_scope(tags=tags, limit=limit)
        self.record.expected_digest = plan or c.config.get("blumeops", {}).get("expected_plan") or None
        self.record._session = self  # the record's guard_paths delegates here
        self.paths = dict(paths or {})
        self.apply_id = uuid.uuid4().hex[:16]
        self.root = Path()
        self._status: git_state.GitStatus | None = None
        self._lock: ApplyLock | None = None
        self._signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._previous_tracker: shell.Tracker | None = None
        self._tracker: shell.Tracker | None = None
        self._snapshot: Snapshot | None = None
        self._making_snapshot = False
        self._source: str | None = None  # where the tools read the repo's files: "snapshot" or "working tree"
        self._groups_seen: list[int] = []
        self._killer: threading.Timer | None = None
        self._exiting = False
        self.stop_grace = float(c.config.get("blumeops", {}).get("stop_grace") or STOP_GRACE)
        self._started = time.monotonic()
        self._time = now_iso()
        self._user = current_user()
        self._machine = current_machine()

    # -- enter --------------------------------------------------------------------------------

    def __enter__(self) -> ApplyRecord:
        self._started = time.monotonic()
        self._time = now_iso()
        self.root = root = repo_root(self.c)
        status = git_state.read_status(self.c, root)
        self._status = status
        expected = git_state.expected_upstream(self.c, root)
        upstream = git_state.upstream_ref(self.c, root) if status.upstream else None
        verdict = git_state.evaluate(
            self.layer.name, owned_paths(self.c, self.layer), status, upstream_ref=upstream, expected_ref=expected
        )  # what git_verdict computes, with the status kept for the path guard
        record = self.record
        record.commit = status.oid
        record.branch = status.branch
        record.upstream = status.upstream
        record.dirty = verdict.dirty
        record.dirty_files = verdict.dirty_files[:DIRTY_FILES_JOURNALED]
        if not verdict.clean:
            self._override_or_refuse(
                git_state.describe(verdict),
                git_state.refusal(verdict, overridable=True),
                git_state.refusal(verdict, overridable=False),
            )
        if self.paths:
            self.guard_paths(self.paths, entering=True)
        lock = ApplyLock(lock_directory(self.c, root), self.layer.name)
        holder = Holder(
            self._user,
            self._machine,
            os.getpid(),
            self._time,
            record.task,
            self.layer.name,
            pgid=os.getpgid(0),
            root=str(root),
        )
        try:
            lock.acquire(holder)
        except LockRefused as refused:
            self._journal("refused", 1, refused.message)
            console.fail(refused.message)
        except OSError as error:
            message = (
                f"Cannot take the {self.layer.name} apply lock in {lock.directory} "
                f"({error.strerror or error}); nothing was applied: make it writable or set blumeops.lock_dir."
            )
            self._journal("refused", 1, message)
            console.fail(message)
        self._lock = lock
        try:
            self._append(self._entry("started", None, record.message))
        except journal.JournalError as error:
            self._release()
            console.fail(
                f"{error.message}; nothing was applied: make its directory writable and free "
                f"(or point blumeops.state_dir elsewhere), then re-run."
            )
        self._install()
        return record

    def _override_or_refuse(self, what: str, refusal: str, fixed: str) -> None:
        """Let `--allow-dirty` through (journaled with `what` as the reason) or refuse: `refusal` when
        the layer allows the override, `fixed` when it does not. Before the lock (entering) the
        refusal is journaled here; inside the block `__exit__` journals it."""
        may_override = overridable(self.layer)
        if self.allow_dirty and may_override:
            self.record.allow_dirty_override = True
            self.record.override_reasons.append(what)
            console.note(f"{self.layer.name}: --allow-dirty overrides the git-state guard ({what}); it is journaled.")
            return
        message = refusal if may_override else fixed
        if self.allow_dirty and not may_override:
            message = message.rstrip(".") + f" (--allow-dirty does not apply to {self.layer.name})."
        if self._lock is None:
            self._journal("refused", 1, message)
        raise Refused(redact(message), code=1)

    def guard_paths(self, paths: Mapping[str, str | Path], *, entering: bool = False) -> None:
        far = git_state.outside(self.root, paths)
        if far:
            listed = ", ".join(f"{label} {path}" for label, path in far)
            what = f"{listed} outside the repository {self.root}"
            refusal = (
                f"Refusing to apply {self.layer.name}: {what}, which git cannot vouch for; "
                f"move it into the repo and commit it"
            )
            self._override_or_refuse(
                what,
                f"{refusal}, or re-run with --allow-dirty to use it anyway (the override is journaled).",
                f"{refusal}.",
            )
        changed = set(self._status.changed if self._status else ())
        dirty = [
            path
            for path in changed
            if git_state.path_in(path, git_state.inside(self.root, paths)) and path not in self.record.dirty_files
        ]
        if dirty:
            self.record.dirty = True
            self.record.dirty_files = (*self.record.dirty_files, *sorted(dirty))[:DIRTY_FILES_JOURNALED]
            shown = ", ".join(sorted(dirty)[: git_state.SHOWN_FILES])
            refusal = f"Refusing to apply {self.layer.name}: uncommitted changes in {shown}; commit and push them"
            self._override_or_refuse(
                f"uncommitted changes in {shown}",
                f"{refusal}, or re-run with --allow-dirty to apply the working tree anyway "
                f"(the override is journaled).",
                f"{refusal}.",
            )
        if not entering:
            self.paths.update(paths)

    # -- signals and tool groups ----------------------------------------------------------------

    def _install(self) -> None:
        self._tracker = shell.Tracker(check=self._before_tool, started=self._tool_started)
        self._previous_tracker = shell.track(self._tracker)
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _uninstall(self) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers = {}
        if self._tracker is not None:
            shell.track(self._previous_tracker)
            self._tracker = None
        if self._killer is not None:
            self._killer.cancel()
            self._killer = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        again = self._signal is not None
        if self._signal is None:
            self._signal = signum
        groups = self._tracker.groups() if self._tracker else ()
        if self._exiting:  # already stopping and journaling: never interrupt that, only hurry the tools
            self._signal_groups([g for g in self._groups_seen if group_alive(g)], signal.SIGKILL)
            return
        if groups:
            # The tool stops; invoke then returns its failed result and the layer's code ends the
            # block. A second signal, or a group still alive after the grace, gets SIGKILL.
            self._signal_groups(groups, signal.SIGKILL if again else signum)
            if not again and self._killer is None:
                self._killer = threading.Timer(self.stop_grace, self._kill_groups)
                self._killer.daemon = True
                self._killer.start()
            return
        raise Interrupted(signum)

    def snapshot(self) -> Path:
        if self._snapshot is not None:
            return self._snapshot.tree
        commit = self.record.commit
        if self.record.dirty or not commit:
            self._source = "working tree"
            return self.root
        trees = (self._lock.directory if self._lock else lock_directory(self.c, self.root)) / "trees"
        directory = trees / f"{self.layer.name}-{self.apply_id}"
        self._making_snapshot = True  # of the journaled commit, named: a move of HEAD cannot reach it
        try:
            snapshots.clear_stale(self.c, self.root, trees, self.layer.name)  # we hold the layer's lock
            self._snapshot = snapshots.make(self.c, self.root, commit, directory)
        except (snapshots.SnapshotError, OSError) as error:
            reason = error.message if isinstance(error, snapshots.SnapshotError) else (error.strerror or str(error))
            raise Refused(
                redact(
                    f"Cannot make a snapshot of commit {commit[:12]} to apply from ({reason}); nothing was "
                    f"applied: free space under {directory.parent} or set blumeops.lock_dir elsewhere."
                ),
                code=1,
            ) from None
        finally:
            self._making_snapshot = False
        self._source = "snapshot"
        self.c.config["blumeops"][SOURCE_ROOT] = str(self._snapshot.tree)
        return self._snapshot.tree

    def _drop_snapshot(self) -> None:
        if self._snapshot is None:
            return
        self.c.config["blumeops"][SOURCE_ROOT] = ""
        snapshots.remove(self.c, self.root, self._snapshot.tree)

    def _before_tool(self) -> None:
        if self._signal is not None:
            raise Interrupted(self._signal)
        if self._snapshot is not None or self._making_snapshot:  # the tools read the snapshot of the commit
            return
        now = git_state.head_now(self.root)
        if self.record.commit and now != self.record.commit:
            raise Exit(redact(self._moved_message(now, before_tool=True)), code=1)

    def _tool_started(self, pgid: int) -> None:
        self._groups_seen.append(pgid)
        if self._lock is not None:
            try:
                self._lock.add_group(pgid)
            except OSError as error:
                console.error(f"Could not record tool process group {pgid} in the lock's holder file ({error}).")
        if self._signal is not None:  # a signal raced the start: stop it at once
            self._signal_groups((pgid,), self._signal)

    @staticmethod
    def _signal_groups(groups: Iterable[int], signum: int) -> None:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)

    def _kill_groups(self) -> None:
        self._signal_groups([g for g in self._groups_seen if group_alive(g)], signal.SIGKILL)

    def _stop_groups(self) -> list[int]:
        """After a signal: wait for every tool group to end, SIGKILL after the grace; the groups left."""
        alive = [g for g in dict.fromkeys(self._groups_seen) if group_alive(g)]
        if alive and self._signal is not None:
            self._signal_groups(alive, self._signal)
        deadline = time.monotonic() + self.stop_grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = [g for g in alive if group_alive(g)]
        if alive:
            self._signal_groups(alive, signal.SIGKILL)
            time.sleep(0.2)
            alive = [g for g in alive if group_alive(g)]
        return alive

    def _moved_message(self, now: str | None, *, before_tool: bool) -> str:
        was = (self.record.commit or "?")[:12]
        moved = f"HEAD moved from {was} to {(now or 'nothing')[:12]} during this apply (a pull, checkout or commit)"
        if before_tool:
            return f"{moved}; stopped before running the next tool so commits are not mixed: re-run the apply."
        return f"{moved}; the tool may have read files of both commits: re-run the apply from a still HEAD."

    def _snapshot_note(self, now: str | None) -> str:
        was = (self.record.commit or "?")[:12]
        return f"HEAD moved to {(now or 'nothing')[:12]} during the apply; its tools read only the snapshot of {was}"

    # -- exit ---------------------------------------------------------------------------------

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exiting = True
        signum = self._signal
        if isinstance(exc, Interrupted) and signum is None:
            signum = exc.signum
        left: list[int] = []
        try:
            if signum is not None:
                left = self._stop_groups()
            self._uninstall()
            result, code, message = classify(exc, self.record.marked)
            moved = None
            if signum is not None:
                name = SIGNAL_NAMES.get(signal.Signals(signum), f"signal {signum}")
                stopped = f"; tool process group(s) {', '.join(map(str, left))} still running" if left else ""
                result, code = "interrupted", signal_exit_code(signum)
                message = f"interrupted by {name}{stopped}; {message}".rstrip("; ")
            elif result in journal.SUCCESS_RESULTS and self.record.commit:
                now = git_state.head_now(self.root)
                if now != self.record.commit and self._snapshot is not None:
                    message = "; ".join(m for m in (message, self._snapshot_note(now)) if m)
                elif now != self.record.commit:
                    moved = self._moved_message(now, before_tool=False)
                    result, code, message = "failed", 1, moved
            self._journal(result, code, "; ".join(m for m in (self.record.message, message) if m))
        finally:
            try:
                self._drop_snapshot()
            finally:
                self._release()
        self._publish()
        if signum is not None:
            raise Exit(
                redact(
                    f"Interrupted by {SIGNAL_NAMES.get(signal.Signals(signum), signum)}: the {self.layer.name} "
                    f"apply stopped (journaled as interrupted); check what it left half-done with "
                    f"`inv plan --layer={self.layer.name}`."
                ),
                code=signal_exit_code(signum),
            ) from None
        if moved is not None:
            raise Exit(redact(moved), code=1)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _entry(self, result: str, code: int | None, message: str) -> dict[str, Any]:
        record = self.record
        entry: dict[str, Any] = {
            "time": self._time,
            "apply_id": self.apply_id,
            "user": self._user,
            "machine": self._machine,
            "layer": self.layer.name,
            "task": record.task,
            "targets": list(record.targets),
            "tags": list(record.tags),
            "limit": record.limit,
            "commit": record.commit,
            "branch": record.branch,
            "upstream": record.upstream,
            "dirty": record.dirty,
            "dirty_files": list(record.dirty_files),
            "allow_dirty_override": record.allow_dirty_override,
            "override_reason": "; ".join(record.override_reasons) or None,
            "paths": {label: str(path) for label, path in self.paths.items()},
            "source": self._source,
            "plan_digest": record.plan_digest,
            "plan_counts": record.plan_counts,
            "result": result,
            "exit_code": code,
            "duration_s": round(time.monotonic() - self._started, 3),
            "message": redact(message),
        }
        if record.deployed:  # a rollback: what the targets run, which is not `commit`
            entry["deployed"] = record.deployed
        return entry

    def _append(self, entry: dict[str, Any]) -> None:
        journal.append(journal.journal_path(self.c), entry)

    def _journal(self, result: str, code: int, message: str) -> None:
        """The apply's final line: in the journal, then as a git note on its commit (queued as
        unpublished). Before the lock (a refusal) the note is pushed at once; after it, once the
        lock is released (`_publish` in `__exit__`)."""
        entry = self._entry(result, code, message)
        try:
            self._append(entry)
        except journal.JournalError as error:  # the apply's own outcome matters more than its end line
            console.error(f"{error.message}; the started line stays as this apply's only record.")
            return
        problem = notes.record(self.c, self.root, entry)
        if problem:
            console.error(problem)
        if self._lock is None:
            self._publish()

    def _publish(self) -> None:
        """Push the journal notes to the remote: never fails the apply, and a Ctrl-C stops only the push."""
        try:
            problem = notes.publish(self.c, self.root)
        except KeyboardInterrupt:
            problem = "The push of the journal notes was interrupted; the next blumeops task retries it."
        if problem:
            console.note(problem)


def classify(  # noqa: PLR0911  # one return per way a block can end
    exc: BaseException | None, marked: str | None
) -> tuple[str, int, str]:
    """(result, exit code, message) for how the `with` block ended."""
    if exc is None:
        return marked or "succeeded", 0, ""
    if isinstance(exc, Refused):
        return "refused", int(exc.code or 1), str(exc.message or "refused")
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


def applying(  # keywords mirror ApplySession
    c: Context,
    layer: Layer,
    *,
    task: str,
    targets: Iterable[str] = (),
    allow_dirty: bool = False,
    tags: str | Iterable[str] | None = None,
    limit: str | None = None,
    plan: str | None = None,
    paths: Mapping[str, str | Path] | None = None,
) -> ApplySession:
    """Guard, lock and journal one apply of `layer`; use as `with applying(...) as record:`.

    `tags`/`limit` are journaled (a tagged run never counts as bringing its targets in line);
    `plan` is the `--plan=DIGEST` the operator reviewed (`record.review` refuses another plan);
    `paths` are the files the apply will read (inventory, roles path, playbook): refused when
    outside the repository or uncommitted, unless `allow_dirty` (journaled with the reason).
    """
    return ApplySession(
        c,
        layer,
        task=task,
        targets=targets,
        allow_dirty=allow_dirty,
        tags=tags,
        limit=limit,
        plan=plan,
        paths=paths,
    )


PLAN_HELP = "apply only if the preview's plan digest is this one (from `inv plan` or a preview; a 12+ digit prefix)"


def expect_plan(c: Context, digest: str | None) -> None:
    """Hand a `--plan=DIGEST` to the next `applying(...)` on this Context, for an apply task whose
    flow calls `applying` without a `plan` keyword."""
    if digest:
        c.config["blumeops"]["expected_plan"] = digest


def journal_file(c: Context) -> Path:
    return journal.journal_path(c)
