"""One apply lock per layer, shared by every clone of the repository on the machine.

The lock itself is a `filelock` (flock) on `<lock_root>/<repo key>/<layer>.lock`: the kernel
releases it when its process dies, so two applies of one layer can never overlap. The repo key
is the repository's root commit, which every clone shares, so two clones of one repo cannot
apply the same layer at once; `<lock_root>` is `blumeops.lock_dir` (default
`$XDG_STATE_HOME/blumeops/locks`, i.e. `~/.local/state/blumeops/locks`), outside any clone.
Beside the lock, `<layer>.holder.json` names the holder (user, machine, pid, its process group,
the process groups of the tools it started, start time, task, repo root) while it runs and is
removed on a clean exit.

A holder file found while the lock is free means the last apply died without cleaning up
(SIGKILL, power loss). That stale lock is reported with the command that clears it and the
apply is refused: it is never broken silently, because the dead apply may have left a
half-changed layer the operator should look at first. While any process of the dead holder's
process groups still runs (an orphaned ansible-playbook), the lock cannot be cleared at all.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filelock import BaseFileLock


@dataclass(frozen=True)
class Holder:
    user: str
    machine: str
    pid: int
    since: str  # UTC ISO time
    task: str
    layer: str
    pgid: int = 0  # the holder's own process group (0: unknown)
    groups: tuple[int, ...] = field(default=())  # process groups of the tools it started
    root: str = ""  # the clone it applies from

    def describe(self) -> str:
        where = f" from {self.root}" if self.root else ""
        return f"{self.user}@{self.machine} pid {self.pid} since {self.since} running {self.task}{where}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holder:
        return cls(
            user=str(data.get("user", "?")),
            machine=str(data.get("machine", "?")),
            pid=int(data.get("pid", 0) or 0),
            since=str(data.get("since", "?")),
            task=str(data.get("task", "?")),
            layer=str(data.get("layer", "?")),
            pgid=int(data.get("pgid", 0) or 0),
            groups=tuple(int(g) for g in data.get("groups") or () if int(g) > 0),
            root=str(data.get("root", "") or ""),
        )

    def process_groups(self) -> tuple[int, ...]:
        """The groups whose processes belong to this apply: its tools' groups, and its own group
        when it led one (a shell job); never a group it merely joined (the shell script around it)."""
        own = (self.pgid,) if self.pgid > 0 and self.pgid == self.pid else ()
        return tuple(dict.fromkeys((*own, *self.groups)))


def default_lock_root() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "blumeops" / "locks"


def lock_dir(lock_root: Path, repo_key: str) -> Path:
    return lock_root / repo_key


def lock_path(directory: Path, layer: str) -> Path:
    return directory / f"{layer}.lock"


def holder_path(directory: Path, layer: str) -> Path:
    return directory / f"{layer}.holder.json"


def read_holder(path: Path) -> Holder | None:
    try:
        return Holder.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of this process group still exists on this machine."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_groups(holder: Holder, machine: str) -> tuple[int, ...]:
    """The holder's process groups that still have a process here (none when it ran elsewhere)."""
    if holder.machine != machine:
        return ()
    return tuple(g for g in holder.process_groups() if group_alive(g))


def unlock_command(layer: str) -> str:
    return f"inv unlock --layer={layer}"


def busy_message(layer: str, holder: Holder | None, path: Path) -> str:
    if holder is None:
        return (
            f"Another {layer} apply holds the lock {path} (its holder details are not written yet); "
            f"wait for it to finish, then re-run."
        )
    return (
        f"Another {layer} apply is running: {holder.describe()}; "
        f"wait for it to finish (or ask {holder.user}), then re-run."
    )


def orphans_message(layer: str, holder: Holder, groups: tuple[int, ...]) -> str:
    listed = ", ".join(str(g) for g in groups)
    kills = " and ".join(f"`kill -TERM -{g}`" for g in groups)
    return (
        f"The {layer} apply lock left by {holder.describe()} is not stale yet: processes of its "
        f"process group {listed} still run (its tool outlived it); wait for them or stop them with "
        f"{kills}, check what they changed, then clear the lock with `{unlock_command(layer)}`."
    )


def stale_message(layer: str, holder: Holder, machine: str, path: Path) -> str:
    orphans = live_groups(holder, machine)
    if orphans:
        return orphans_message(layer, holder, orphans)
    if holder.machine == machine and pid_alive(holder.pid):
        why = f"its lock is no longer held (pid {holder.pid} on {machine} is now some other process)"
    elif holder.machine == machine:
        why = f"its process {holder.pid} on {machine} is no longer running"
    else:
        why = f"it was taken on {holder.machine}, not this machine, and its lock is no longer held"
    return (
        f"Stale {layer} apply lock left by {holder.describe()}: {why}; check what that apply "
        f"left half-done, then clear it with `{unlock_command(layer)}` (or `rm {path}`) and re-run."
    )


class LockRefused(Exception):
    """The lock is held, or stale; `message` is the one sentence for the operator."""

    def __init__(self, message: str, *, stale: bool) -> None:
        super().__init__(message)
        self.message = message
        self.stale = stale


class ApplyLock:
    """`acquire()` or raise LockRefused; `add_group()` records a tool's process group in the holder
    file; `release()` removes the holder file, then unlocks."""

    def __init__(self, directory: Path, layer: str) -> None:
        self.directory = directory
        self.layer = layer
        self.path = lock_path(directory, layer)
        self.holder_file = holder_path(directory, layer)
        self.holder: Holder | None = None
        self._lock: BaseFileLock | None = None
        self._writing = threading.Lock()  # tools start from several threads (a preflight beside a preview)

    def acquire(self, holder: Holder) -> None:
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise LockRefused(
                busy_message(self.layer, read_holder(self.holder_file), self.holder_file), stale=False
            ) from None
        previous = read_holder(self.holder_file)
        if previous is not None or self.holder_file.exists():
            lock.release()
            if previous is None:
                previous = Holder("?", "?", 0, "?", "?", self.layer)
            raise LockRefused(stale_message(self.layer, previous, holder.machine, self.holder_file), stale=True)
        self._lock = lock
        self._write(holder)

    def _write(self, holder: Holder) -> None:
        data = asdict(holder)
        data["groups"] = list(holder.groups)
        tmp = self.holder_file.with_name(f"{self.holder_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.holder_file)
        self.holder = holder

    def add_group(self, pgid: int) -> None:
        """Record a tool's process group before it can change anything (the holder file names it,
        so `inv unlock` refuses while it lives even if this process is killed)."""
        with self._writing:
            if self._lock is None or self.holder is None or pgid in self.holder.groups:
                return
            alive = tuple(g for g in self.holder.groups if group_alive(g))  # finished tools drop out
            self._write(replace(self.holder, groups=(*alive, pgid)))

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            self.holder_file.unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None


def clear_stale(directory: Path, layer: str, machine: str | None = None) -> tuple[str, Holder | None]:
    """Remove a stale holder file. ("busy", holder) when a live apply holds the lock, ("orphans",
    holder) when processes of the dead holder's process groups still run (nothing removed in either
    case), ("cleared", holder) when a stale one was removed, ("free", None) when there was none."""
    import socket

    from filelock import FileLock, Timeout

    path = lock_path(directory, layer)
    holder_file = holder_path(directory, layer)
    if not holder_file.exists():
        return "free", None
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return "busy", read_holder(holder_file)
    try:
        holder = read_holder(holder_file)
        if holder is not None and live_groups(holder, machine or socket.gethostname()):
            return "orphans", holder
        holder_file.unlink(missing_ok=True)
        return "cleared", holder
    finally:
        lock.release()
