"""The one console: everything the tasks print goes through here.

* Colour only on a terminal; plain text when piped (rich decides from `isatty`, honours NO_COLOR).
* Every line, table cell, JSON document and error passes through `redaction.redact`.
* `status()` shows a spinner on a terminal, or one progress line on stderr when the work
  takes longer than a second and stderr is not a terminal.
* `fail()` is the guardrail error channel: an invoke `Exit` with one actionable sentence.

rich is imported inside the functions: `inv --list` never pays for it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, NoReturn

from invoke.exceptions import Exit

from blumeops_tasks.redaction import StreamRedactor, redact, redact_data

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 160
PROGRESS_DELAY = 1.0


class Declined(Exit):
    """The operator did not confirm (or could not be asked): nothing was changed."""


class _RedactingStream:
    """File-like wrapper: whatever is written is redacted on its way out, even in pieces.

    invoke writes a child's output 1000 bytes at a time and flushes after each piece, so a secret
    can arrive split in two: the end of a piece that could still grow into a secret is held back
    (`redaction.StreamRedactor`) and `flush()` does not release it. `finish()` does, masked if it
    is a partial secret; every stream still holding something is kept (`_pending`) and finished
    when the outermost task ends and when the process exits.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._redactor = StreamRedactor()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            shown = self._redactor.feed(text)
            if shown:
                self._stream.write(shown)
            _holding(self, self._redactor.holding)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def finish(self) -> None:
        """Release what was held back (a partial secret masked) and flush. The stream stays usable."""
        with self._lock:
            rest = self._redactor.finish()
            _holding(self, False)
            if rest:
                self._stream.write(rest)
        self._stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


# The streams holding text back, kept alive until they release it (the runner that wrote to one
# may be gone by then).
_pending: set[_RedactingStream] = set()
_pending_lock = threading.Lock()


def _holding(stream: _RedactingStream, holding: bool) -> None:
    with _pending_lock:
        if holding:
            _pending.add(stream)
        else:
            _pending.discard(stream)


def finish_streams() -> None:
    """Finish every redacting stream that still holds text back (a run's commands are done)."""
    with _pending_lock:
        pending = list(_pending)
    for stream in pending:
        with contextlib.suppress(OSError, ValueError):  # its underlying stream is closed: nothing to show
            stream.finish()


atexit.register(finish_streams)


def _is_tty(stream: IO[str]) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


@contextmanager
def _rich(stream: IO[str] | None = None) -> Iterator[Console]:
    """A rich console writing through a redacting stream, finished when the block ends."""
    from rich.console import Console

    target = sys.stdout if stream is None else stream
    redacting = _RedactingStream(target)
    try:
        yield Console(
            file=redacting,  # type: ignore[arg-type]
            highlight=False,
            width=None if _is_tty(target) else PIPED_WIDTH,
        )
    finally:
        redacting.finish()


def out(text: str = "", style: str | None = None) -> None:
    """Print one line (or block) to stdout."""
    with _rich() as console:
        console.print(text, style=style, markup=False)


def note(text: str) -> None:
    """A secondary line for the operator, on stderr so JSON on stdout stays clean."""
    with _rich(sys.stderr) as console:
        console.print(text, style="dim", markup=False)


def error(text: str) -> None:
    with _rich(sys.stderr) as console:
        console.print(text, style="bold red", markup=False)


_json_printed = threading.Event()


def json_document(data: Mapping[str, Any]) -> dict[str, Any]:
    """The one top-level shape of every `--json` document: `exit_code` and `error` first, then the payload."""
    return {"exit_code": int(data.get("exit_code", 0)), "error": data.get("error"), **data}


def print_json(data: Mapping[str, Any]) -> None:
    """Print a JSON document (redacted, stable key order, the shared top-level shape) to stdout."""
    sys.stdout.write(json.dumps(redact_data(json_document(data)), indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
    _json_printed.set()


def json_printed() -> bool:
    """Whether this process already printed its JSON document (a `--json` error then adds none)."""
    return _json_printed.is_set()


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: Sequence[str | None] | None = None,
) -> None:
    """Print a table; cells are redacted before rendering so wrapping cannot split a secret."""
    from rich.table import Table

    tbl = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        tbl.add_column(column, overflow="fold")
    for index, row in enumerate(rows):
        style = styles[index] if styles else None
        tbl.add_row(*(redact(str(cell)) for cell in row), style=style)
    with _rich() as console:
        console.print(tbl)


def diff(text: str) -> None:
    """Print a unified diff, coloured on a terminal."""
    from rich.syntax import Syntax

    with _rich() as console:
        if console.is_terminal:
            console.print(Syntax(redact(text), "diff", theme="ansi_dark", background_color="default"))
        else:
            console.print(text, markup=False, highlight=False)


@contextmanager
def status(message: str) -> Iterator[None]:
    """Spinner on a terminal; a single progress line on stderr if the work passes one second."""
    if _is_tty(sys.stderr):
        with _rich(sys.stderr) as console, console.status(redact(message)):
            yield
        return
    timer = threading.Timer(PROGRESS_DELAY, lambda: note(f"{message} ..."))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop with one actionable sentence (what is wrong, how to fix it), never a traceback."""
    raise Exit(redact(message), code=code)


def confirm(question: str, *, yes: bool, action: str) -> None:
    """Ask before changing anything. Default No. Without a terminal, refuse unless --yes.

    Returns when the operator agreed; otherwise stops with exit 1.
    """
    if yes:
        return
    if not _is_tty(sys.stdin):
        message = (
            f"Refusing to {action} without confirmation: no terminal to ask on; "
            f"read the plan above and re-run with --yes."
        )
        raise Declined(redact(message), code=1)
    with _rich(sys.stderr) as console:
        console.print(f"{question} [y/N] ", end="", markup=False)
    try:
        answer = sys.stdin.readline().strip().lower()
    except KeyboardInterrupt:
        answer = ""
    if answer not in {"y", "yes"}:
        raise Declined(redact(f"Nothing changed: {action} was not confirmed."), code=1)
