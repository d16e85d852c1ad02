"""Secrets from 1Password: a `.env` value written `op://vault/item/field` is read with its CLI.

`op read` runs once per reference per process (one `inv` run), with the reference as an argument
(never through a shell). The value goes into the environment as if `.env` had held it, unless the
environment already sets the variable to a value (the environment wins, as for every `.env` value;
a reference there, as `mise` exports `.env`, is read like one in the file), and the variable is
declared secret, so its value is redacted whatever the variable is called.

Without `op` on PATH, or signed out, the variable stays unset: a note says so on stderr, and
`inv preflight` shows a failing row (`preflight_checks`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blumeops_tasks.redaction import declare_secret_names

if TYPE_CHECKING:
    from invoke.context import Context

    from blumeops_tasks.preflight import CheckSpec, Outcome

PREFIX = "op://"
# `op read` may wait for the operator to unlock the desktop app.
READ_TIMEOUT = 120.0
NOT_ON_PATH = "the 1Password CLI `op` is not on PATH"
INSTALL_FIX = "install the 1Password CLI (developer.1password.com/docs/cli) or write the values in .env"
SIGN_IN_FIX = "sign in (`op signin`, or unlock the 1Password app) and check each op:// reference"


@dataclass(frozen=True)
class Lookup:
    """One reference looked up: `error` is "" when its value is in the environment."""

    name: str
    reference: str
    error: str = ""


# (name, reference) -> its lookup; a process asks `op` once per reference.
_lookups: dict[tuple[str, str], Lookup] = {}


def is_reference(value: str) -> bool:
    return value.startswith(PREFIX)


def _op_error(stderr: str, code: int) -> str:
    """op's own reason, without its `[ERROR] 2024/01/02 03:04:05` prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return f"`op read` exited with code {code}"
    return re.sub(r"^\[ERROR\]\s*(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s*)?", "", lines[0])


def read(op: str, reference: str) -> tuple[str | None, str]:
    """`op read --no-newline REFERENCE` -> (value, "") or (None, op's reason)."""
    try:
        proc = subprocess.run(
            [op, "read", "--no-newline", reference],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=READ_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"`op read` did not answer within {READ_TIMEOUT:g}s"
    except OSError as exc:
        return None, f"`op` could not run: {exc.strerror}"
    if proc.returncode != 0:
        return None, _op_error(proc.stderr.decode("utf-8", "replace"), proc.returncode)
    return proc.stdout.decode("utf-8", "surrogateescape"), ""


def _look_up(name: str, reference: str) -> Lookup:
    op = shutil.which("op")
    if op is None:
        return Lookup(name, reference, NOT_ON_PATH)
    value, error = read(op, reference)
    if value is None:
        return Lookup(name, reference, error)
    os.environ[name] = value
    return Lookup(name, reference)


def references_in(values: Mapping[str, str | None]) -> dict[str, str]:
    """The op:// references among `.env` values: the environment's value when it is one (mise
    exports `.env` unresolved), else the file's."""
    found: dict[str, str] = {}
    for name, value in values.items():
        current = os.environ.get(name)
        if current is not None and is_reference(current):
            found[name] = current
        elif value is not None and is_reference(value):
            found[name] = value
    return found


def load(references: Mapping[str, str], source: Path) -> None:
    """Read each reference whose variable the environment does not set to a value; note failures."""
    declare_secret_names(references)
    fresh: list[Lookup] = []
    for name, reference in references.items():
        key = (name, reference)
        if key in _lookups or not is_reference(os.environ.get(name, reference)):
            continue  # looked up already, or the environment sets a value, which wins
        _lookups[key] = _look_up(name, reference)
        fresh.append(_lookups[key])
        if _lookups[key].error and os.environ.get(name) == reference:
            del os.environ[name]  # a reference is no credential: unset reads as unset
    failed = [lookup for lookup in fresh if lookup.error]
    if failed:
        from blumeops_tasks.console import note

        names = ", ".join(lookup.name for lookup in failed)
        note(f"{source}: {names} left unset: {failed[0].error} (see `inv preflight`).")


def _outcome(references: Mapping[str, str], source: Path) -> Outcome:
    from blumeops_tasks.preflight import failed, ok

    load(references, source)
    lookups = [_lookups.get((name, ref), Lookup(name, ref)) for name, ref in references.items()]
    failures = [lookup for lookup in lookups if lookup.error]
    if failures:
        names = ", ".join(lookup.name for lookup in failures)
        if all(lookup.error == NOT_ON_PATH for lookup in failures):
            return failed(f"{names} in {source.name} are op:// references, but {NOT_ON_PATH}", INSTALL_FIX)
        return failed(f"`op read` failed for {names}: {failures[0].error}", SIGN_IN_FIX)
    read_names = [lookup.name for lookup in lookups if (lookup.name, lookup.reference) in _lookups]
    kept = [lookup.name for lookup in lookups if (lookup.name, lookup.reference) not in _lookups]
    detail = f"{len(read_names)} value(s) read from 1Password" + (f" ({', '.join(read_names)})" if read_names else "")
    if kept:
        detail += f"; {', '.join(kept)} set in the environment, which wins over .env"
    return ok(detail)


def preflight_checks(c: Context) -> list[CheckSpec]:
    """The layer-independent row for `inv preflight`: only when `.env` holds op:// references."""
    from blumeops_tasks.config import env_file, read_env_file
    from blumeops_tasks.preflight import CheckSpec

    path = env_file(c)
    if not path.is_file():
        return []
    references = references_in(read_env_file(path))
    if not references:
        return []
    return [CheckSpec("secrets", "1Password references", lambda: _outcome(references, path))]
