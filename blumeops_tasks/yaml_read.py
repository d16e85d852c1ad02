"""One way to read YAML files: PyYAML's safe loader, parsed by libyaml when PyYAML was built with it
(the same documents, several times faster - `inv check --changed` reads every Application file).

PyYAML is imported inside the functions: nothing on the `inv --list` path loads it.
"""

from __future__ import annotations

from typing import Any


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """The one document of `text` (None when empty); raises yaml.YAMLError."""
    import yaml

    return yaml.load(text, Loader=_loader())  # a safe loader: libyaml's or PyYAML's own


def safe_load_all(text: str) -> list[Any]:
    """Every document of `text`, in order; raises yaml.YAMLError."""
    import yaml

    return list(yaml.load_all(text, Loader=_loader()))  # a safe loader, as above
