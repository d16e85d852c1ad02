"""The apply journal: one JSON line per apply of any layer, appended, never rewritten.

Location: `blumeops.journal` (default `journal.jsonl`), relative to `blumeops.state_dir`
(default `.blumeops/`, gitignored) unless absolute. Every string is redacted before it is
written. Appends are serialised by a small lock beside the file so lines never interleave.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks.config import state_dir
from blumeops_tasks.redaction import redact_data

# Results an entry can carry. "succeeded" and "no-changes" both mean the layer matches the
# commit afterwards (what `pending` counts from); "refused" is an apply the guard or lock stopped.
SUCCESS_RESULTS: frozenset[str] = frozenset({"succeeded", "no-changes"})
RESULTS: tuple[str, ...] = ("succeeded", "no-changes", "failed", "declined", "interrupted", "refused")
APPEND_TIMEOUT = 10.0
DEFAULT_NAME = "journal.jsonl"

FIELDS: tuple[str, ...] = (
    "time",
    "user",
    "machine",
    "layer",
    "task",
    "targets",
    "commit",
    "branch",
    "dirty",
    "dirty_files",
    "allow_dirty_override",
    "plan_counts",
    "result",
    "exit_code",
    "duration_s",
    "message",
)


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
    from filelock import FileLock

    line = encode(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        FileLock(str(path) + ".lock", timeout=APPEND_TIMEOUT, thread_local=False),
        path.open("a", encoding="utf-8") as handle,
    ):
        handle.write(line)
        handle.flush()


def parse_lines(lines: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """Entries in file order, and how many lines were not valid JSON objects (skipped)."""
    entries: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(value, dict):
            entries.append(value)
        else:
            bad += 1
    return entries, bad


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    if not path.is_file():
        return [], 0
    with path.open(encoding="utf-8") as handle:
        return parse_lines(handle)


def select(
    entries: Sequence[Mapping[str, Any]], layer: str | None = None, limit: int | None = None
) -> list[Mapping[str, Any]]:
    """Newest first, optionally one layer, at most `limit` entries."""
    chosen = [entry for entry in reversed(entries) if layer is None or entry.get("layer") == layer]
    return chosen if limit is None or limit <= 0 else chosen[:limit]


def last_success(entries: Sequence[Mapping[str, Any]], layer: str) -> Mapping[str, Any] | None:
    """The newest entry of `layer` whose result leaves the layer matching its commit."""
    for entry in reversed(entries):
        if entry.get("layer") == layer and entry.get("result") in SUCCESS_RESULTS and entry.get("commit"):
            found: Mapping[str, Any] = entry
            return found
    return None
