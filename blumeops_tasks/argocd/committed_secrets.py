"""A Secret with its values committed under the ArgoCD tree: found by file, never printed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from blumeops_tasks import yaml_read

SUFFIXES = (".yaml", ".yml", ".json")


def find(repo: Path, base: str) -> list[str]:
    """Repo-relative files holding a `kind: Secret` with non-empty `data` or `stringData`.

    Files that are not YAML (Helm templates, say) are left to the render checks.
    """
    import yaml

    root = repo / base
    found: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
        try:
            docs = yaml_read.safe_load_all(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for doc in docs:
            if isinstance(doc, Mapping) and doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
                found.append(path.relative_to(repo).as_posix())
                break
    return found
