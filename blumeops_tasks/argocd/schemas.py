"""Validate rendered objects: Kubernetes' own schemas (kubernetes-validate's files), else the
openAPIV3Schema of a CRD found in the repo's rendered manifests, else not checkable (a note).

Schemas are loaded once per process: kubernetes-validate's `validate()` re-reads its multi-megabyte
definitions file on every call, so the same files are read here through its own helpers and the
validators are cached per (Kubernetes version, apiVersion, kind). A CRD's validator is cached per CRD.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_LOCK = threading.Lock()


def object_name(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name` (namespace omitted when absent), for messages."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')}/{namespace}/{name}" if namespace else f"{obj.get('kind', '?')}/{name}"


@functools.cache
def _schema_dir(kube_version: str) -> tuple[str, str]:
    """(schema directory, the Kubernetes minor version it holds) as kubernetes-validate picks them."""
    from kubernetes_validate import utils

    wanted = utils.major_minor(kube_version.removeprefix("v"))
    if wanted > utils.latest_version():
        raise utils.VersionNotSupportedError(version=wanted)
    version = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1]
    return f"v{version}-local-strict", utils.major_minor(version)


@functools.cache
def _definitions(schema_dir: str, kube_version: str) -> Any:
    from kubernetes_validate import utils

    return utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", kube_version)


@functools.cache
def _builtin(kube_version: str, api_version: str, kind: str) -> Any | None:
    """A validator for a built-in kind, or None when kubernetes-validate has no schema for it."""
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    schema_dir, _ = _schema_dir(kube_version)
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{short}.json", kube_version)
    except FileNotFoundError:
        return None
    registry: Any = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_definitions(schema_dir, kube_version)) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@dataclass(frozen=True)
class CrdIndex:
    """openAPIV3Schemas of the CRDs found in the rendered manifests, by (group, version, kind)."""

    schemas: Mapping[tuple[str, str, str], str]  # JSON text: hashable, so validators cache on it

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> CrdIndex:
        found: dict[tuple[str, str, str], str] = {}
        for obj in objects:
            if obj.get("kind") != "CustomResourceDefinition":
                continue
            spec = obj.get("spec") or {}
            group = str(spec.get("group") or "")
            kind = str((spec.get("names") or {}).get("kind") or "")
            for version in spec.get("versions") or []:
                if not isinstance(version, Mapping):
                    continue
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if group and kind and isinstance(schema, Mapping):
                    found[(group, str(version.get("name") or ""), kind)] = json.dumps(schema, sort_keys=True)
        return cls(found)

    def lookup(self, api_version: str, kind: str) -> str | None:
        group, _, version = api_version.rpartition("/")
        return self.schemas.get((group, version, kind))


def needs_crd(obj: Mapping[str, Any], kube_version: str, crds: CrdIndex) -> bool:
    """An object with neither a built-in schema nor a CRD in `crds` (a CRD elsewhere may describe it)."""
    api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
    if not api_version or not kind or crds.lookup(api_version, kind) is not None:
        return False
    try:
        with _LOCK:
            return _builtin(kube_version, api_version, kind) is None
    except Exception:  # an unsupported version: validate() reports it
        return False


@functools.cache
def _crd_validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    # apiVersion, kind and metadata are the API server's; a CRD schema need not describe them.
    props = schema.setdefault("properties", {})
    for key in ("apiVersion", "kind", "metadata"):
        props.pop(key, None)
    return jsonschema.validators.Draft7Validator(schema)


@dataclass(frozen=True)
class Validation:
    problems: tuple[str, ...]
    unchecked: tuple[str, ...]  # "Kind (apiVersion)" with no schema and no CRD in the repo
    by_crd: int
    skipped: int = 0  # objects of the unchecked kinds


def _error_line(label: str, error: Any) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{label}: {path}: {error.message}"


def validate(objects: Iterable[Mapping[str, Any]], kube_version: str, crds: CrdIndex) -> Validation:
    """Problems (schema violations), the kinds that could not be checked, and how many used a CRD."""
    from jsonschema.exceptions import best_match

    problems: list[str] = []
    unchecked: list[str] = []
    by_crd = skipped = 0
    for obj in objects:
        label = object_name(obj)
        api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
        if not api_version or not kind:
            problems.append(f"{label}: apiVersion and kind are required")
            continue
        if not (obj.get("metadata") or {}).get("name"):
            problems.append(f"{label}: metadata.name is missing")
            continue
        try:
            with _LOCK:  # first use loads files; later uses hit the cache
                validator = _builtin(kube_version, api_version, kind)
        except Exception as exc:  # VersionNotSupportedError and friends carry .message
            problems.append(f"{label}: {getattr(exc, 'message', None) or exc}")
            continue
        if validator is None:
            schema_json = crds.lookup(api_version, kind)
            if schema_json is None:
                skipped += 1
                note = f"{kind} ({api_version})"
                if note not in unchecked:
                    unchecked.append(note)
                continue
            with _LOCK:
                validator = _crd_validator(schema_json)
            by_crd += 1
            data = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        else:
            data = dict(obj)
        error = best_match(validator.iter_errors(data))
        if error is not None:
            problems.append(_error_line(label, error))
    return Validation(tuple(problems), tuple(unchecked), by_crd, skipped)
