"""One apply lock per layer.

The lock itself is a `filelock` (flock) on `<state_dir>/locks/<layer>.lock`: the kernel
releases it when its process dies, so two applies of one layer can never overlap. Beside it,
`<layer>.holder.json` names the holder (user, machine, pid, start time, task) while it runs
and is removed on a clean exit.

A holder file found while the lock is free means the last apply died without cleaning up
(SIGKILL, power loss). That stale lock is reported with the command that clears it and the
apply is refused: it is never broken silently, because the dead apply may have left a
half-changed layer the operator should look at first.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
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

    def describe(self) -> str:
        return f"{self.user}@{self.machine} pid {self.pid} since {self.since} running {self.task}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holder:
        return cls(
            user=str(data.get("user", "?")),
            machine=str(data.get("machine", "?")),
            pid=int(data.get("pid", 0) or 0),
            since=str(data.get("since", "?")),
            task=str(data.get("task", "?")),
            layer=str(data.get("layer", "?")),
        )


def lock_dir(state: Path) -> Path:
    return state / "locks"


def lock_path(state: Path, layer: str) -> Path:
    return lock_dir(state) / f"{layer}.lock"


def holder_path(state: Path, layer: str) -> Path:
    return lock_dir(state) / f"{layer}.holder.json"


def read_holder(path: Path) -> Holder | None:
    try:
        return Holder.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
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


def stale_message(layer: str, holder: Holder, machine: str, path: Path) -> str:
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
    """`acquire()` or raise LockRefused; `release()` removes the holder file, then unlocks."""

    def __init__(self, state: Path, layer: str) -> None:
        self.state = state
        self.layer = layer
        self.path = lock_path(state, layer)
        self.holder_file = holder_path(state, layer)
        self._lock: BaseFileLock | None = None

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
        tmp = self.holder_file.with_name(f"{self.holder_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(holder), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.holder_file)
        self._lock = lock

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            self.holder_file.unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None


def clear_stale(state: Path, layer: str) -> tuple[str, Holder | None]:
    """Remove a stale holder file. ("busy", holder) when a live apply holds the lock (nothing
    removed), ("cleared", holder) when a stale one was removed, ("free", None) when there was none."""
    from filelock import FileLock, Timeout

    path = lock_path(state, layer)
    holder_file = holder_path(state, layer)
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
        holder_file.unlink(missing_ok=True)
        return "cleared", holder
    finally:
        lock.release()
