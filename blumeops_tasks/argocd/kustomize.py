"""A small, honest offline kustomize renderer for the subset this repo uses.

No kustomize or kubectl binary is assumed. Supported kustomization fields:

* `resources`: YAML files (multi-document) and subdirectories holding their own kustomization;
* `namespace`: set on every namespaced object;
* `labels` (pairs, includeSelectors, includeTemplates) and the older `commonLabels`;
* `commonAnnotations`;
* `images` (name, newName, newTag, digest) on containers and initContainers of pod templates;
* `configMapGenerator` (files, literals, envs not supported) only with the name-suffix hash
  disabled (`options.disableNameSuffixHash: true` or `generatorOptions`), because the
  content hash and the reference rewriting it implies are not reproduced here.

Any other field, or a remote resource, stops the render with `RenderError` naming it:
an unsupported field is never silently ignored. Pure except for reading files.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "commonLabels",
        "commonAnnotations",
        "images",
        "configMapGenerator",
        "generatorOptions",
    }
)
# Kinds without a namespace: `namespace:` leaves them alone (as kustomize does).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
    }
)
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


class RenderError(Exception):
    """The directory cannot be rendered offline; the message says which file and why."""


def find_kustomization(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _load_yaml_documents(path: Path) -> list[Any]:
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RenderError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None


def render(directory: Path) -> list[dict[str, Any]]:
    """Every object the kustomization in `directory` produces, in kustomize's resource order."""
    return _render(directory.resolve(), ())


def _render(directory: Path, stack: tuple[Path, ...]) -> list[dict[str, Any]]:
    if directory in stack:
        raise RenderError(f"{directory}: kustomization includes itself through {stack[-1]}")
    kfile = find_kustomization(directory)
    if kfile is None:
        raise RenderError(f"{directory} has no kustomization.yaml")
    docs = _load_yaml_documents(kfile)
    if len(docs) != 1 or not isinstance(docs[0], Mapping):
        raise RenderError(f"{kfile} must hold exactly one mapping")
    spec: Mapping[str, Any] = docs[0]
    unsupported = sorted(set(spec) - SUPPORTED_FIELDS)
    if unsupported:
        raise RenderError(
            f"{kfile} uses {', '.join(unsupported)}, which the offline renderer does not support "
            f"(supported: {', '.join(sorted(SUPPORTED_FIELDS - {'apiVersion', 'kind'}))})"
        )
    kind = spec.get("kind", "Kustomization")
    if kind != "Kustomization":
        raise RenderError(f"{kfile} has kind {kind!r}; only Kustomization is supported")

    objects: list[dict[str, Any]] = []
    for entry in _list(spec, "resources", kfile):
        objects.extend(_resource(directory, entry, kfile, (*stack, directory)))
    objects.extend(_config_maps(directory, spec, kfile))

    _transform(objects, spec, kfile)
    return objects


def _transform(objects: list[dict[str, Any]], spec: Mapping[str, Any], kfile: Path) -> None:
    """namespace, labels, annotations and images, in kustomize's order."""
    namespace = spec.get("namespace")
    if namespace is not None:
        if not isinstance(namespace, str) or not namespace:
            raise RenderError(f"{kfile}: namespace must be a non-empty string")
        for obj in objects:
            if obj.get("kind") not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace
    for pairs, selectors, templates in _label_sets(spec, kfile):
        for obj in objects:
            _apply_labels(obj, pairs, selectors=selectors, templates=templates)
    annotations = spec.get("commonAnnotations")
    if annotations is not None:
        pairs = _string_map(annotations, kfile, "commonAnnotations")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("annotations", {}).update(pairs)
    for image in _list(spec, "images", kfile):
        _apply_image(objects, image, kfile)


def _list(spec: Mapping[str, Any], key: str, kfile: Path) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RenderError(f"{kfile}: {key} must be a list")
    return value


def _string_map(value: Any, kfile: Path, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise RenderError(f"{kfile}: {what} must map names to strings (quote numbers and booleans)")
    return {str(k): v for k, v in value.items()}


def _resource(directory: Path, entry: Any, kfile: Path, stack: tuple[Path, ...]) -> list[dict[str, Any]]:
    if not isinstance(entry, str) or not entry:
        raise RenderError(f"{kfile}: every resources entry must be a path")
    if "://" in entry or entry.startswith(("github.com/", "git@")):
        raise RenderError(f"{kfile}: remote resource {entry!r} is not supported offline")
    target = (directory / entry).resolve()
    if target.is_dir():
        return _render(target, stack)
    if not target.is_file():
        raise RenderError(f"{kfile}: resource {entry!r} does not exist")
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(_load_yaml_documents(target)):
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise RenderError(f"{target}: document {index + 1} is not a Kubernetes object (apiVersion, kind)")
        if doc.get("kind") == "List":
            raise RenderError(f"{target}: kind List is not supported; write one document per object")
        objects.append(copy.deepcopy(doc))
    return objects


def _label_sets(spec: Mapping[str, Any], kfile: Path) -> list[tuple[dict[str, str], bool, bool]]:
    sets: list[tuple[dict[str, str], bool, bool]] = []
    common = spec.get("commonLabels")
    if common is not None:
        sets.append((_string_map(common, kfile, "commonLabels"), True, True))
    for entry in _list(spec, "labels", kfile):
        if not isinstance(entry, Mapping):
            raise RenderError(f"{kfile}: every labels entry must be a mapping with pairs")
        extra = sorted(set(entry) - {"pairs", "includeSelectors", "includeTemplates"})
        if extra:
            raise RenderError(f"{kfile}: labels entry uses {', '.join(extra)}, which is not supported")
        selectors = bool(entry.get("includeSelectors", False))
        templates = bool(entry.get("includeTemplates", False)) or selectors
        sets.append((_string_map(entry.get("pairs") or {}, kfile, "labels.pairs"), selectors, templates))
    return sets


def _apply_labels(obj: dict[str, Any], pairs: dict[str, str], *, selectors: bool, templates: bool) -> None:
    obj.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if selectors and kind == "Service":
        spec.setdefault("selector", {}).update(pairs)
    if kind in WORKLOADS:
        if selectors:
            spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
        if templates:
            spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _pod_specs(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind in WORKLOADS:
        return [((spec.get("template") or {}).get("spec")) or {}]
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return [((job.get("template") or {}).get("spec")) or {}]
    return []


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def _apply_image(objects: list[dict[str, Any]], image: Any, kfile: Path) -> None:
    if not isinstance(image, Mapping) or not isinstance(image.get("name"), str):
        raise RenderError(f"{kfile}: every images entry needs a name")
    extra = sorted(set(image) - {"name", "newName", "newTag", "digest"})
    if extra:
        raise RenderError(f"{kfile}: images entry {image['name']!r} uses {', '.join(extra)} (not supported)")
    for key in ("newName", "newTag", "digest"):
        if key in image and not isinstance(image[key], str):
            raise RenderError(f"{kfile}: images {image['name']!r} {key} must be a string (quote it)")
    for obj in objects:
        for pod in _pod_specs(obj):
            for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
                current = container.get("image")
                if not isinstance(current, str) or _image_name(current) != image["name"]:
                    continue
                name = image.get("newName", image["name"])
                if "digest" in image:
                    container["image"] = f"{name}@{image['digest']}"
                elif "newTag" in image:
                    container["image"] = f"{name}:{image['newTag']}"
                else:
                    container["image"] = name + current[len(_image_name(current)) :]


def _config_maps(directory: Path, spec: Mapping[str, Any], kfile: Path) -> list[dict[str, Any]]:
    generators = _list(spec, "configMapGenerator", kfile)
    if not generators:
        return []
    global_options = spec.get("generatorOptions") or {}
    if not isinstance(global_options, Mapping):
        raise RenderError(f"{kfile}: generatorOptions must be a mapping")
    _check_options(global_options, kfile, "generatorOptions")
    result: list[dict[str, Any]] = []
    for generator in generators:
        if not isinstance(generator, Mapping) or not isinstance(generator.get("name"), str):
            raise RenderError(f"{kfile}: every configMapGenerator entry needs a name")
        name = generator["name"]
        extra = sorted(set(generator) - {"name", "files", "literals", "options", "behavior"})
        if extra:
            raise RenderError(f"{kfile}: configMapGenerator {name!r} uses {', '.join(extra)} (not supported)")
        if generator.get("behavior", "create") != "create":
            raise RenderError(f"{kfile}: configMapGenerator {name!r} behavior must be create")
        options = generator.get("options") or {}
        _check_options(options, kfile, f"configMapGenerator {name!r} options")
        disabled = options.get("disableNameSuffixHash", global_options.get("disableNameSuffixHash", False))
        if disabled is not True:
            raise RenderError(
                f"{kfile}: configMapGenerator {name!r} needs options.disableNameSuffixHash: true "
                f"(the offline renderer does not compute kustomize's name hash)"
            )
        data = _config_map_data(directory, generator, kfile)
        metadata: dict[str, Any] = {"name": name}
        for field_name in ("labels", "annotations"):
            if field_name in options:
                metadata[field_name] = dict(_string_map(options[field_name], kfile, f"options.{field_name}"))
        result.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return result


def _config_map_data(directory: Path, generator: Mapping[str, Any], kfile: Path) -> dict[str, str]:
    name = generator["name"]
    data: dict[str, str] = {}
    for entry in generator.get("files") or []:
        key, _, rel = str(entry).partition("=") if "=" in str(entry) else ("", "", str(entry))
        path = (directory / rel).resolve()
        if not path.is_file():
            raise RenderError(f"{kfile}: configMapGenerator {name!r} file {rel!r} does not exist")
        data[key or path.name] = path.read_text(encoding="utf-8")
    for literal in generator.get("literals") or []:
        key, sep, value = str(literal).partition("=")
        if not sep or not key:
            raise RenderError(f"{kfile}: configMapGenerator {name!r} literal {literal!r} is not KEY=VALUE")
        data[key] = value
    return data


def _check_options(options: Mapping[str, Any], kfile: Path, what: str) -> None:
    extra = sorted(set(options) - {"disableNameSuffixHash", "labels", "annotations"})
    if extra:
        raise RenderError(f"{kfile}: {what} uses {', '.join(extra)} (not supported)")


def object_name(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name` (namespace omitted when absent), for messages."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = meta.get("name", "?")
    return f"{obj.get('kind', '?')}/{namespace}/{name}" if namespace else f"{obj.get('kind', '?')}/{name}"


def validate_objects(objects: list[dict[str, Any]], kube_version: str) -> list[str]:
    """Problems found validating each object against the Kubernetes schemas offline (strict)."""
    import kubernetes_validate

    problems: list[str] = []
    for obj in objects:
        label = object_name(obj)
        if not (obj.get("metadata") or {}).get("name"):
            problems.append(f"{label}: metadata.name is missing")
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
            problems.append(f"{label}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{label}: {exc.message}")
        except Exception as exc:  # VersionNotSupportedError and friends carry .message
            problems.append(f"{label}: {getattr(exc, 'message', None) or exc}")
    return problems
