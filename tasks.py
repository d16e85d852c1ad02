"""Composition root for `inv`: the whole namespace comes from the blumeops_tasks package."""

from pathlib import Path

from blumeops_tasks.namespace import build_namespace

ns = build_namespace(root=Path(__file__).resolve().parent)
