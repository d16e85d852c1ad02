"""Running external commands: always through the invoke Context, output redacted.

During an apply (while `applying(...)` has installed a `Tracker`), every command starts in its
own session, hence its own process group, led by the command's shell: the apply's signal
handlers stop the whole group (ansible-playbook with its forks and ssh, pulumi with its plugins),
and the holder file names the group, so a killed `inv` leaves a trace of what still runs.
"""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from invoke.context import Context
from invoke.runners import Local, Result

from blumeops_tasks.console import _RedactingStream


class Tracker:
    """Told of every process group an apply starts. `check()` runs before each command (it may
    raise to stop one from starting); `started(pgid)` once it runs; `ended(pgid)` when it returns."""

    def __init__(
        self,
        *,
        check: Callable[[], None] | None = None,
        started: Callable[[int], None] | None = None,
    ) -> None:
        self._check = check
        self._started = started
        self._lock = threading.Lock()
        self.running: set[int] = set()

    def check(self) -> None:
        if self._check is not None:
            self._check()

    def started(self, pgid: int) -> None:
        with self._lock:
            self.running.add(pgid)
        if self._started is not None:
            self._started(pgid)

    def ended(self, pgid: int) -> None:
        with self._lock:
            self.running.discard(pgid)

    def groups(self) -> tuple[int, ...]:
        with self._lock:
            return tuple(self.running)


_tracker: Tracker | None = None


def track(tracker: Tracker | None) -> Tracker | None:
    """Install the apply's tracker (None removes it); returns the previous one."""
    global _tracker  # one apply per process: a module-level slot is the registry
    previous, _tracker = _tracker, tracker
    return previous


def tracker() -> Tracker | None:
    return _tracker


class QuickRunner(Local):
    """invoke's Local runner, polling for the command's end every 2 ms instead of 10 ms: blumeops runs
    many short commands (git above all), and the default sleep added about 6 ms to each."""

    input_sleep = 0.002


class GroupRunner(QuickRunner):
    """The quick runner, with the child started in a new session (its own process group)."""

    def start(self, command: str, shell: str, env: dict[str, Any]) -> None:
        if self.using_pty:  # pty.fork already makes the child a session leader
            super().start(command, shell, env)
            return
        from subprocess import PIPE, Popen

        self.process = Popen(  # invoke's own Local.start, plus start_new_session
            command,
            shell=True,
            executable=shell,
            env=env,
            stdout=PIPE,
            stderr=PIPE,
            stdin=PIPE,
            start_new_session=True,
        )
        active = _tracker
        if active is not None:
            active.started(self.process.pid)

    def stop(self) -> None:
        super().stop()
        active = _tracker
        process = getattr(self, "process", None)
        if active is not None and process is not None:
            active.ended(process.pid)


def run(
    c: Context,
    command: str,
    *,
    env: Mapping[str, str] | None = None,
    hide: bool | str = False,
    warn: bool = False,
    **kwargs: Any,
) -> Result:
    """`c.run` with redacted streams and no stdin mirroring. Secrets go in `env`, never in `command`.

    invoke lets an explicit stream override `hide`, so a redacting stream is given only for a
    stream that is shown. During an apply the command runs in its own process group (see above).
    """
    hidden = _hidden_streams(hide)
    streams: dict[str, Any] = {}
    if "stdout" not in hidden:
        streams["out_stream"] = _RedactingStream(sys.stdout)
    if "stderr" not in hidden:
        streams["err_stream"] = _RedactingStream(sys.stderr)
    options: dict[str, Any] = {"env": dict(env or {}), "hide": hide, "warn": warn, "in_stream": False}
    active = _tracker
    if type(c).run is not Context.run:  # a mock, or fabric's Connection: its own runner
        result = c.run(command, **options, **streams, **kwargs)
    elif active is not None:
        active.check()
        result = c._run(GroupRunner(c), command, **options, **streams, **kwargs)  # invoke's runner injection point
    else:
        result = c._run(QuickRunner(c), command, **options, **streams, **kwargs)
    assert result is not None  # warn=True still returns a Result; only disowned runs return None
    return result


def _hidden_streams(hide: bool | str | None) -> set[str]:
    """invoke's `hide` values: True/'both', 'out'/'stdout', 'err'/'stderr', False/None."""
    if hide in (True, "both"):
        return {"stdout", "stderr"}
    if hide in ("out", "stdout"):
        return {"stdout"}
    if hide in ("err", "stderr"):
        return {"stderr"}
    return set()


def which(tool: str) -> str | None:
    return shutil.which(tool)
