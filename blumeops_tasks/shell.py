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
    """`c.run` with redacted streams and no stdin mirroring. Secrets go in `env`, never in `command`."""
    result = c.run(
        command,
        env=dict(env or {}),
        hide=hide,
        warn=warn,
        in_stream=False,
        out_stream=_RedactingStream(sys.stdout),
        err_stream=_RedactingStream(sys.stderr),
        **kwargs,
    )
    assert result is not None  # warn=True still returns a Result; only disowned runs return None
    return result


def which(tool: str) -> str | None:
    return shutil.which(tool)
