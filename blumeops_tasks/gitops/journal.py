"""The apply journal: JSON lines, appended, never rewritten.

Location: `blumeops.journal` (default `journal.jsonl`), relative to `blumeops.state_dir`
(default `.blumeops/`, gitignored) unless absolute. Every string is redacted before it is
written. Appends are serialised by a small lock beside the file so lines never interleave;
each append starts on a fresh line (a truncated last line never swallows the next entry) and
is flushed and fsynced before the apply goes on.

An apply writes two lines sharing an `apply_id`: `started` before anything changes, then its
end (succeeded, failed, ...). Readers merge them: an end replaces its started line, and a
started line with no end stays as `started` - an apply still running, or one that was killed
(SIGKILL, power loss) and never wrote its end.

Reading never fails on content: a line that is not UTF-8 or not a JSON object is counted and
skipped. `read_newest` reads from the end of the file backwards in blocks, so `history
--limit` and `pending` cost what they show, not the journal's length.

The readers take a second stream, `shared`: the entries other clones published as git notes
(`gitops.notes.entries`), newest first too. Both are merged by when each entry was written
(`end_time`), and an entry seen in both (the same `apply_id`) is yielded once; `Scan.sources`
says where each apply was seen ("journal", "notes").
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks.config import state_dir
from blumeops_tasks.redaction import redact_data

# Results an entry can carry. "succeeded" and "no-changes" both mean the targets match the
# commit afterwards (what `pending` counts from); "refused" is an apply the guard or lock stopped;
# "started" is the first line of every apply (alone: still running, or killed without an end).
# "rolled-back" is a success that left its targets at an older commit on purpose (`deployed`, not
# `commit`): a baseline at `deployed`, never a claim that the targets match HEAD.
SUCCESS_RESULTS: frozenset[str] = frozenset({"succeeded", "no-changes"})
STARTED = "started"
ROLLED_BACK = "rolled-back"
RESULTS: tuple[str, ...] = (
    "succeeded",
    "no-changes",
    ROLLED_BACK,
    "failed",
    "declined",
    "interrupted",
    "refused",
    STARTED,
)
APPEND_TIMEOUT = 10.0
DEFAULT_NAME = "journal.jsonl"
BLOCK = 64 * 1024
DRAIN = 64  # entries `newest` reads past its limit, for the other copy of an apply read last
SLACK = 1.0  # seconds: `time` has second resolution, so end times order entries only to about a second

FIELDS: tuple[str, ...] = (
    "time",
    "apply_id",
    "user",
    "machine",
    "layer",
    "task",
    "targets",
    "tags",
    "limit",
    "commit",
    "deployed",
    "branch",
    "upstream",
    "dirty",
    "dirty_files",
    "allow_dirty_override",
    "override_reason",
    "paths",
    "source",
    "plan_digest",
    "plan_counts",
    "result",
    "exit_code",
    "duration_s",
    "message",
)


class JournalError(Exception):
    """The journal cannot be written; `message` is one sentence for the operator."""

    def __init__(self, path: Path, error: BaseException) -> None:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        self.message = f"Cannot write the apply journal {path} ({reason})"
        super().__init__(self.message)


def journal_path(c: Context) -> Path:
    configured = c.config.get("blumeops", {}).get("journal") or DEFAULT_NAME
    path = Path(str(configured)).expanduser()
    return path if path.is_absolute() else state_dir(c) / path


def encode(entry: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """One redacted JSON line (fields in the documented order, extras after)."""
    ordered = {key: entry[key] for key in FIELDS if key in entry}
    ordered.update({key: value for key, value in entry.items() if key not in ordered})
    return json.dumps(redact_data(ordered, environ), separators=(",", ":"), default=str) + "\n"


def append(path: Path, entry: Mapping[str, Any]) -> None:
    """Append one entry durably: on a fresh line, flushed and fsynced. Raises JournalError."""
    from filelock import FileLock, Timeout

    line = encode(entry).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=APPEND_TIMEOUT, thread_local=False):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # the last line was cut short: never glue onto it
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
    except (OSError, Timeout) as error:
        raise JournalError(path, error) from error


def parse_line(raw: bytes | str) -> dict[str, Any] | None:
    """One journal line as an entry, or None when it is not UTF-8 or not a JSON object."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_lines(lines: Iterable[bytes | str]) -> tuple[list[dict[str, Any]], int]:
    """Entries in file order, and how many non-blank lines were unreadable (skipped)."""
    entries: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        entry = parse_line(line)
        if entry is None:
            bad += 1
        else:
            entries.append(entry)
    return entries, bad


def reverse_lines(path: Path, block: int = BLOCK) -> Iterator[bytes]:
    """The file's lines, last first, read backwards in blocks (never the whole file at once)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        position = handle.seek(0, os.SEEK_END)
        tail = b""
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step) + tail
            lines = chunk.split(b"\n")
            tail = lines.pop(0)  # maybe the end of a line that starts in an earlier block
            yield from reversed(lines)
        yield tail


@dataclass
class Scan:
    """What a backward read found: merged entries newest first, the unreadable lines skipped, and
    where each apply (by `apply_id`) was seen: {"journal"}, {"notes"} or both."""

    entries: list[dict[str, Any]]
    bad: int = 0
    sources: dict[str, set[str]] = field(default_factory=dict)


def merge_newest(raw_lines: Iterable[bytes | str]) -> Iterator[dict[str, Any] | None]:
    """Entries newest first from lines given newest first, a started line merged with its end:
    an end line is yielded in place (it carries every field), its started line is dropped; a
    started line with no end is yielded as it is. None for each unreadable line."""
    ended: set[str] = set()
    for raw in raw_lines:
        if not raw.strip():
            continue
        entry = parse_line(raw)
        if entry is None:
            yield None
            continue
        apply_id = entry.get("apply_id")
        if entry.get("result") == STARTED:
            if apply_id and apply_id in ended:
                ended.discard(str(apply_id))
                continue
        elif apply_id:
            ended.add(str(apply_id))
        yield entry


Stream = Iterable[dict[str, Any] | None]


def end_time(entry: Mapping[str, Any]) -> float:
    """When an entry was written, in seconds since the epoch: its start `time` plus `duration_s`
    (0 when it has no readable time). The order of the journal's lines, and of the notes."""
    try:
        start = datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, TypeError, ValueError):
        return 0.0
    try:
        return start + float(entry.get("duration_s") or 0)
    except (TypeError, ValueError):
        return start


def merged(scan: Scan, local: Stream, shared: Stream = ()) -> Iterator[dict[str, Any]]:
    """Entries newest first from this clone's journal (`local`) and the notes (`shared`), both
    given newest first: interleaved by `end_time`, each apply once (the copy met first), its
    sources recorded in `scan.sources`; unreadable lines (None) are counted in `scan.bad`."""

    def tagged(stream: Stream, source: str) -> Iterator[tuple[float, str, dict[str, Any]]]:
        for entry in stream:
            if entry is None:
                scan.bad += 1
            else:
                yield end_time(entry), source, entry

    both = heapq.merge(tagged(local, "journal"), tagged(shared, "notes"), key=lambda item: item[0], reverse=True)
    for _when, source, entry in both:
        apply_id = entry.get("apply_id")
        if apply_id:
            seen = scan.sources.setdefault(str(apply_id), set())
            first = not seen
            seen.add(source)
            if not first:
                continue
        yield entry


def read_newest(
    path: Path, *, until: Callable[[list[dict[str, Any]]], bool] | None = None, shared: Stream = ()
) -> Scan:
    """Merged entries newest first (with the notes' `shared` ones), reading backwards until
    `until(entries)` says enough."""
    scan = Scan([])
    for entry in merged(scan, merge_newest(reverse_lines(path)), shared):
        scan.entries.append(entry)
        if until is not None and until(scan.entries):
            break
    return scan


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every merged entry in file order (oldest first), and the count of unreadable lines."""
    scan = read_newest(path)
    return list(reversed(scan.entries)), scan.bad


def select(
    entries: Sequence[Mapping[str, Any]], layer: str | None = None, limit: int | None = None
) -> list[Mapping[str, Any]]:
    """Newest first from entries in file order, optionally one layer, at most `limit` entries."""
    chosen = [entry for entry in reversed(entries) if layer is None or entry.get("layer") == layer]
    return chosen if limit is None or limit <= 0 else chosen[:limit]


def newest(path: Path, layer: str | None = None, limit: int | None = None, *, shared: Stream = ()) -> Scan:
    """`history`: the newest `limit` merged entries (0/None: all), optionally of one layer, from the
    journal and the notes' `shared` entries. Once `limit` are found, reading goes on only while
    entries are about as new as the last one kept (within SLACK), so each kept apply's copy in the
    other source is seen (its `sources` complete) - at most DRAIN entries further."""
    scan = Scan([])
    floor: float | None = None
    drained = 0
    for entry in merged(scan, merge_newest(reverse_lines(path)), shared):
        if floor is not None:
            drained += 1
            if floor <= 0 or end_time(entry) < floor - SLACK or drained > DRAIN:
                break
            continue
        if _of(entry, layer):
            scan.entries.append(entry)
            if limit and limit > 0 and len(scan.entries) >= limit:
                floor = end_time(entry)
    return scan


def _of(entry: Mapping[str, Any], layer: str | None) -> bool:
    return layer is None or entry.get("layer") == layer


def is_baseline(entry: Mapping[str, Any]) -> bool:
    """Whether an entry leaves its targets matching its commit: a success that was not limited to
    some tags (a tagged run changes only part of a target, so it is never a baseline) and that did
    not apply uncommitted files."""
    if entry.get("limit") and not entry.get("targets"):
        return False  # limited to hosts it does not name: it vouches for nothing
    if entry.get("dirty"):
        return False  # it applied uncommitted files, not its commit
    if entry.get("result") == ROLLED_BACK:
        return bool(entry.get("deployed")) and not entry.get("tags")
    return entry.get("result") in SUCCESS_RESULTS and bool(entry.get("commit")) and not entry.get("tags")


def as_baseline(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """A baseline entry with `commit` = what its targets run: `deployed` for a rollback."""
    if entry.get("result") == ROLLED_BACK and entry.get("deployed"):
        return {**entry, "commit": entry["deployed"]}
    return entry


def covers(entry: Mapping[str, Any], target: str) -> bool:
    """Whether a baseline entry covers a target: it names it, or names no target (the whole layer)."""
    targets = entry.get("targets") or []
    return not targets or target in targets


def last_success(entries: Sequence[Mapping[str, Any]], layer: str) -> Mapping[str, Any] | None:
    """The newest baseline entry of `layer` (entries in file order)."""
    for entry in reversed(entries):
        if entry.get("layer") == layer and is_baseline(entry):
            return as_baseline(entry)
    return None


WHOLE_LAYER = "*"  # the target name of a layer that declares none (e.g. before any apply names one)


class Baselines:
    """Per layer and target, the newest baseline entry, fed entries newest first.

    A baseline naming targets covers those; one naming none covers the whole layer. A target is
    known when the repo declares it (`declared`) or any entry of its layer names it. `feed`
    returns True once every known target of every layer has its baseline (older lines cannot
    change the answer then), so `pending` stops reading there.
    """

    def __init__(self, declared: Mapping[str, Iterable[str]]) -> None:
        self.known: dict[str, dict[str, None]] = {layer: dict.fromkeys(t) for layer, t in declared.items()}
        self.named: dict[str, dict[str, tuple[int, Mapping[str, Any]]]] = {layer: {} for layer in declared}
        self.whole: dict[str, tuple[int, Mapping[str, Any]] | None] = dict.fromkeys(declared)
        self._seq = 0

    def feed(self, entry: Mapping[str, Any]) -> bool:
        layer = str(entry.get("layer"))
        if layer in self.known:
            self._seq += 1
            targets = [str(t) for t in entry.get("targets") or []]
            self.known[layer].update(dict.fromkeys(targets))
            if is_baseline(entry):
                base = as_baseline(entry)
                if not targets and self.whole[layer] is None:
                    self.whole[layer] = (self._seq, base)
                for target in targets:
                    self.named[layer].setdefault(target, (self._seq, base))
        return self.complete()

    def complete(self) -> bool:
        for layer, known in self.known.items():
            if self.whole[layer] is not None:
                continue
            if not known or any(target not in self.named[layer] for target in known):
                return False
        return True

    def targets(self, layer: str) -> list[str]:
        return sorted(self.known[layer]) or [WHOLE_LAYER]

    def baseline(self, layer: str, target: str) -> Mapping[str, Any] | None:
        """The newest entry that brought `target` in line with its commit (None: never)."""
        options = [self.whole[layer], self.named[layer].get(target)]
        found = [option for option in options if option is not None]
        return min(found, key=lambda option: option[0])[1] if found else None


def baselines(path: Path, declared: Mapping[str, Iterable[str]], *, shared: Stream = ()) -> tuple[Baselines, int]:
    """Read the journal from its end (with the notes' `shared` entries) until every target of the
    `declared` layers has a baseline."""
    found = Baselines(declared)
    scan = Scan([])
    if not found.complete():
        for entry in merged(scan, merge_newest(reverse_lines(path)), shared):
            if found.feed(entry):
                break
    return found, scan.bad
