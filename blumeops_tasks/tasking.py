"""The task decorator every blumeops task uses.

`GuardedTask` keeps the two error channels apart:
* guardrail failures are `Exit` (one sentence, already redacted by `console.fail`);
* a tool's own failure (`UnexpectedExit`) passes through with the tool's exit code, redacted;
* Ctrl-C is exit 130 with one line; anything unexpected is one line naming the task
  (BLUMEOPS_DEBUG=1 shows the traceback).
* A task run with `--json` that stops with a message before printing its document prints
  `{"exit_code": N, "error": "<the sentence>"}`, so stdout is always one JSON document.
* No automatic short flags: a flag letter would mean different things in different tasks
  (`-l` for --limit here, --layer there), so every flag is spelled out.
Before the body runs, `.env` is loaded without overriding the environment (`op://` values read
from 1Password); when the last running task ends, every redacting stream releases what it held back.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit, UnexpectedExit
from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from blumeops_tasks.config import load_env_file
from blumeops_tasks.redaction import redact


class _Running:
    """How many tasks run in this process, in any thread. When the last one ends, every command
    is done: the redacting streams release what they held back. A task another task calls
    (perhaps in a thread, as `inv plan` previews layers) must not release a stream still in use."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @contextmanager
    def task(self) -> Iterator[None]:
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                last = self._count == 0
            if last:
                from blumeops_tasks.console import finish_streams

                finish_streams()


_RUNNING = _Running()


def _tool_failure(exc: UnexpectedExit) -> Exit:
    result = exc.result
    tail = [line for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    last = f": {tail[-1].strip()}" if tail else ""
    return Exit(redact(f"`{result.command}` failed with exit code {result.exited}{last}"), code=result.exited)


def _json_error(exc: Exit) -> None:
    from blumeops_tasks import console

    message = exc.message if isinstance(exc.message, str) else ""
    if message and not console.json_printed():
        console.print_json({"exit_code": exc.code or 1, "error": message})


class GuardedTask(Task):  # type: ignore[type-arg]  # invoke's Task is loosely typed
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._guarded(*args, **kwargs)
        except Exit as exc:
            if kwargs.get("json"):
                _json_error(exc)
            raise

    def _guarded(self, *args: Any, **kwargs: Any) -> Any:
        with _RUNNING.task():
            return self._body(*args, **kwargs)

    def _body(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if args and isinstance(args[0], Context):
                load_env_file(args[0])
            return super().__call__(*args, **kwargs)
        except Exit:
            raise
        except UnexpectedExit as exc:
            raise _tool_failure(exc) from None
        except KeyboardInterrupt:
            raise Exit("Interrupted.", code=130) from None
        except Exception as exc:
            if os.environ.get("BLUMEOPS_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise Exit(
                redact(
                    f"{self.name} stopped on an unexpected {type(exc).__name__}: {message} "
                    f"(re-run with BLUMEOPS_DEBUG=1 for the traceback)."
                ),
                code=1,
            ) from None


task = functools.partial(invoke_task, klass=GuardedTask, auto_shortflags=False)
