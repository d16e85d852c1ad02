"""The steps of `inv heartbeat`: plan every layer and read `inv pending`'s report in-process, write
them as node_exporter textfile metrics (atomically), and tell a webhook once when a layer drifts.

Pure functions decide (per-layer beats, the exposition text, which layers newly drifted, the
message); `run` does the I/O. The exit code follows `inv plan`: 0 no layer drifts, 2 changes
pending, 1 a preview failed (or the pending report, the metrics file or the webhook did).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from invoke.context import Context

    from blumeops_tasks.plan import LayerPlan

# What the heartbeat remembers between runs, under the state directory.
STATE_FILE = "heartbeat.json"
# node_exporter usually runs as its own user: the metrics file must be readable by everyone.
METRICS_MODE = 0o644
WEBHOOK_TIMEOUT = 10.0
SHOWN_TARGETS = 5

EXIT_NO_CHANGES, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@dataclass(frozen=True)
class LayerBeat:
    """One layer at one heartbeat: its own plan exit code, its changes and pending commits."""

    layer: str
    exit_code: int
    changes: int = 0
    pending_commits: int | None = None  # None: not known (the pending report failed, or an unknown commit)
    drifted_targets: tuple[str, ...] = ()

    @property
    def drift(self) -> bool | None:
        """True changes pending, False none, None unknown (the preview failed)."""
        if self.exit_code == EXIT_ERROR:
            return None
        return self.exit_code == EXIT_CHANGES


def beats(plans: Sequence[LayerPlan], pending: Mapping[str, Any] | None) -> list[LayerBeat]:
    """Each plan with its own exit code (as `inv plan --layer=L` would give) and the pending report's
    commit count for the layer (an unknown last-applied commit counts as unknown)."""
    from blumeops_tasks.plan import exit_code

    counts: dict[str, int | None] = {}
    for item in (pending or {}).get("layers", []):
        known = item.get("state") != "unknown-commit"
        counts[str(item["layer"])] = len(item.get("commits") or []) if known else None
    return [
        LayerBeat(
            layer=plan.layer,
            exit_code=exit_code([plan]),
            changes=len(plan.changes),
            pending_commits=counts.get(plan.layer),
            drifted_targets=tuple(t.target for t in plan.targets if t.changes),
        )
        for plan in plans
    ]


# ---- the exposition ---------------------------------------------------------------------------

_METRICS: tuple[tuple[str, str], ...] = (
    ("blumeops_drift", "Whether the layer's plan has changes pending (1) or not (0); NaN when its preview failed."),
    (
        "blumeops_plan_exit_code",
        "The layer's preview exit code, as inv plan gives it: 0 no changes, 2 changes pending, 1 error.",
    ),
    ("blumeops_plan_changes", "How many changes the layer's plan would make (0 when its preview failed)."),
    (
        "blumeops_pending_commits",
        "Commits touching the layer's files since its last full apply (inv pending); NaN when not known.",
    ),
)
_TIMESTAMP = ("blumeops_last_plan_timestamp_seconds", "When the heartbeat's plan finished, in seconds since the epoch.")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return str(int(value))


def _values(beat: LayerBeat) -> dict[str, float | None]:
    drift = beat.drift
    return {
        "blumeops_drift": None if drift is None else float(drift),
        "blumeops_plan_exit_code": float(beat.exit_code),
        "blumeops_plan_changes": float(beat.changes),
        "blumeops_pending_commits": None if beat.pending_commits is None else float(beat.pending_commits),
    }


def exposition(layer_beats: Sequence[LayerBeat], finished: float) -> str:
    """The Prometheus text exposition format (version 0.0.4): HELP and TYPE once per metric family,
    one sample per layer, then the time of the plan."""
    lines: list[str] = []
    values = {beat.layer: _values(beat) for beat in layer_beats}
    for name, help_text in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [f'{name}{{layer="{_label(layer)}"}} {_number(v[name])}' for layer, v in values.items()]
    name, help_text = _TIMESTAMP
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_number(round(finished, 3))}"]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never half of either: a
    temporary file in the same directory (not named *.prom, so the collector never reads it),
    flushed to disk, made world-readable, then renamed over `path`."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(METRICS_MODE)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---- drift transitions and the webhook --------------------------------------------------------


def newly_drifted(previous: Mapping[str, bool], layer_beats: Sequence[LayerBeat]) -> list[LayerBeat]:
    """Layers that drift now and were not known to drift before (in line, or never seen). A failed
    preview says nothing: a layer that drifted, failed once, and drifts again is not new."""
    return [beat for beat in layer_beats if beat.drift and not previous.get(beat.layer, False)]


def remembered(
    previous: Mapping[str, bool], layer_beats: Sequence[LayerBeat], unsent: Sequence[str]
) -> dict[str, bool]:
    """The drift state to keep: each layer's known state, except layers whose preview failed (their
    last known state stays) and layers whose notice could not be sent (still not notified: retried)."""
    state = dict(previous)
    for beat in layer_beats:
        if beat.drift is not None and beat.layer not in unsent:
            state[beat.layer] = beat.drift
    return state


def message(drifted: Sequence[LayerBeat], machine: str, head: str | None) -> str:
    """One short notice: which layers drifted, on which targets, seen from where."""
    parts = []
    for beat in drifted:
        targets = list(beat.drifted_targets[:SHOWN_TARGETS])
        if len(beat.drifted_targets) > SHOWN_TARGETS:
            targets.append(f"+{len(beat.drifted_targets) - SHOWN_TARGETS} more")
        where = f" on {', '.join(targets)}" if targets else ""
        parts.append(f"{beat.layer} ({beat.changes} change{'s' if beat.changes != 1 else ''}{where})")
    commit = f" at {head[:12]}" if head else ""
    command = f"inv plan --layer={drifted[0].layer}" if len(drifted) == 1 else "inv plan"
    return f"blumeops drift: {'; '.join(parts)}, seen by {machine}{commit}. Preview with `{command}`."


def post(url: str, text: str, timeout: float = WEBHOOK_TIMEOUT) -> str | None:
    """POST `text` (plain UTF-8) to the webhook; None when it was accepted (2xx), else one sentence
    on why. The URL is never part of the sentence (it may carry a token)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=text.encode("utf-8"),
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "Title": "blumeops drift"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return None
    except urllib.error.HTTPError as exc:
        return f"the webhook answered HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, str) else type(exc.reason).__name__
        return f"the webhook could not be reached ({reason})"
    except (OSError, ValueError) as exc:
        return f"the webhook could not be reached ({type(exc).__name__})"


def read_state(path: Path) -> dict[str, bool]:
    """Each layer's last known drift; an unreadable or missing file is an empty memory."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    drift = data.get("drift") if isinstance(data, dict) else None
    return {str(k): bool(v) for k, v in drift.items()} if isinstance(drift, dict) else {}


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    exit_code: int
    beats: list[LayerBeat]
    problems: list[str]
    notified: list[str]
    text: str


def _pending(c: Context, selected: Sequence[Any]) -> tuple[dict[str, Any] | None, str | None]:
    from invoke.exceptions import Exit

    from blumeops_tasks.gitops.tasks import pending_report, shared_notes

    try:  # the notes of every clone, fetched: the heartbeat's clone rarely applies anything itself
        _root, shared = shared_notes(c, fetch=True)
        return pending_report(c, selected, shared), None
    except Exit as exc:
        return None, f"the pending report failed: {exc.message or f'exit code {exc.code}'}"
    except Exception as exc:
        return None, f"the pending report failed: {type(exc).__name__}: {exc}".splitlines()[0]


def run(c: Context, *, layer: str | None, textfile: str | None, webhook: str | None) -> Outcome:
    """Plan (as `inv plan`), read pending commits (as `inv pending`), write the metrics, notify."""
    from blumeops_tasks import console, layers
    from blumeops_tasks.config import state_dir
    from blumeops_tasks.cross_layer import collect_plans
    from blumeops_tasks.gitops.session import current_machine
    from blumeops_tasks.plan import exit_code

    selected = layers.select(layer, c)
    with console.status(f"Heartbeat: previewing {', '.join(lay.name for lay in selected)}"):
        plans = collect_plans(c, selected)
        report, pending_problem = _pending(c, selected)
    finished = time.time()
    layer_beats = beats(plans, report)
    text = exposition(layer_beats, finished)
    problems = [f"{plan.layer} preview failed: {plan.error}" for plan in plans if plan.error]
    if pending_problem:
        problems.append(pending_problem)

    if textfile:
        target = Path(textfile).expanduser()
        if not target.parent.is_dir():
            console.fail(
                f"The metrics directory {target.parent} does not exist; create it (node_exporter's "
                f"--collector.textfile.directory) or pass another --textfile."
            )
        try:
            write_atomically(target, text)
        except OSError as exc:
            console.fail(f"Cannot write the metrics to {target}: {exc.strerror}; check the directory's permissions.")

    state_path = state_dir(c) / STATE_FILE
    previous = read_state(state_path)
    drifted = newly_drifted(previous, layer_beats)
    notified: list[str] = []
    unsent: list[str] = []
    if drifted and webhook:
        head = (report or {}).get("head")
        failure = post(webhook, message(drifted, current_machine(), head))
        if failure:
            unsent = [beat.layer for beat in drifted]
            problems.append(f"{failure}; the notice for {', '.join(unsent)} is retried on the next heartbeat")
        else:
            notified = [beat.layer for beat in drifted]
    state = remembered(previous, layer_beats, unsent)
    remember_problem = ""
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(state_path, json.dumps({"drift": state}, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        remember_problem = f"cannot remember the drift state in {state_path}: {exc.strerror}"
        problems.append(remember_problem)

    # Beyond the previews, a failed pending report, notice or memory is an error too (exit 1).
    failed_beyond_plans = bool(pending_problem or unsent or remember_problem)
    return Outcome(EXIT_ERROR if failed_beyond_plans else exit_code(plans), layer_beats, problems, notified, text)
