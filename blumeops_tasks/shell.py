"""Running external commands: always through the invoke Context, output redacted."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from typing import Any

from invoke.context import Context
from invoke.runners import Result

from blumeops_tasks.console import _RedactingStream


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
    stream that is shown.
    """
    hidden = _hidden_streams(hide)
    streams: dict[str, Any] = {}
    if "stdout" not in hidden:
        streams["out_stream"] = _RedactingStream(sys.stdout)
    if "stderr" not in hidden:
        streams["err_stream"] = _RedactingStream(sys.stderr)
    result = c.run(command, env=dict(env or {}), hide=hide, warn=warn, in_stream=False, **streams, **kwargs)
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
