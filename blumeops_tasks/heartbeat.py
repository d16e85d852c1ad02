"""`inv heartbeat`: the drift heartbeat a timer runs (roles/drift_heartbeat installs it; docs/heartbeat.md).

The task is thin: the steps live in `heartbeat_steps`, imported when it runs.
"""

from __future__ import annotations

import os
import sys

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, layers
from blumeops_tasks.redaction import declare_secret_names, redact
from blumeops_tasks.tasking import task

# The environment variable the webhook URL may come from (the drift_heartbeat role's environment file).
WEBHOOK_ENV = "BLUMEOPS_HEARTBEAT_WEBHOOK"
declare_secret_names([WEBHOOK_ENV])  # an ntfy topic or a token in the URL is a secret


@task(
    help={
        "textfile": "write the metrics to this file, atomically (node_exporter's textfile collector reads "
        "<dir>/*.prom); default: print them",
        "webhook": "POST one short message here when a layer goes from no drift to drift (e.g. an ntfy topic "
        f"URL); default: ${WEBHOOK_ENV}",
        "layer": "only this layer (default: all)",
    }
)
def heartbeat(c: Context, textfile: str | None = None, webhook: str | None = None, layer: str | None = None) -> None:
    """Plan every layer and count pending commits, as node_exporter textfile metrics; notify new drift once.

    Exit 0 no changes, 2 changes pending, 1 error (as `inv plan`; a failed pending report or webhook is an error).
    """
    from blumeops_tasks import heartbeat_steps

    layers.select(layer, c)  # an unknown layer stops here, before any preview
    outcome = heartbeat_steps.run(c, layer=layer, textfile=textfile, webhook=webhook or os.environ.get(WEBHOOK_ENV))
    if textfile:
        summary = ", ".join(f"{b.layer} {_state(b.drift)}" for b in outcome.beats)
        console.out(f"Wrote the heartbeat metrics to {textfile}: {summary}.")
    else:
        sys.stdout.write(redact(outcome.text))  # as is: the exposition format is line-exact
        sys.stdout.flush()
    if outcome.notified:
        console.note(f"Sent the drift notice for {', '.join(outcome.notified)} to the webhook.")
    if outcome.problems:
        raise Exit(redact("; ".join(p.rstrip(".") for p in outcome.problems)) + ".", code=outcome.exit_code)
    if outcome.exit_code:
        raise Exit(code=outcome.exit_code)


def _state(drift: bool | None) -> str:
    return "error" if drift is None else ("drift" if drift else "in line")
