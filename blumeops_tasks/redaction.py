"""The one redaction point: every printed line, JSON document, journal entry and error passes here.

A value is secret when its environment variable is declared secret by a layer (see
`blumeops_tasks.layers.SECRET_ENV_VARS`) or its name looks like a secret (KEY, TOKEN, SECRET,
PASSWORD, PASSPHRASE). Values are read from the environment at call time, so a variable loaded
from `.env` later is still redacted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSPHRASE|API_KEY|AUTH_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
# Values shorter than this are not masked: masking "1" or "on" would garble every line.
_MIN_SECRET_LENGTH = 4

_declared: set[str] = set()


def declare_secret_names(names: Iterable[str]) -> None:
    """Register environment variable names whose values must never be shown."""
    _declared.update(names)


def is_secret_name(name: str) -> bool:
    return name in _declared or bool(_SECRET_NAME.search(name))


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Current secret values, longest first so a value containing another is masked whole."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    for value in secret_values(environ):
        text = text.replace(value, MASK)
    return text


def redact_data(data: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Redact every string inside a JSON-like structure (keys included)."""
    values = secret_values(environ)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            for value in values:
                node = node.replace(value, MASK)
            return node
        if isinstance(node, Mapping):
            return {walk(k): walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        return node

    return walk(data)
