"""The offline kustomize renderer and schema validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from blumeops_tasks.argocd import kustomize
from tests.conftest import REPO

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: web
          image: registry.local:5000/team/web:old
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: web
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def test_renders_resources_namespace_labels_images_and_config_maps(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [deployment.yaml]\n",
            "base/deployment.yaml": DEPLOYMENT,
            "service.yaml": SERVICE,
            "app.conf": "listen 80\n",
            "kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: web
resources: [base, service.yaml]
labels:
  - pairs: {team: ops}
    includeSelectors: true
  - pairs: {tier: front}
commonAnnotations: {owner: erich}
images:
  - name: registry.local:5000/team/web
    newTag: "1.2.3"
  - name: busybox
    newName: mirror/busybox
    digest: sha256:abc
configMapGenerator:
  - name: web-config
    files: [app.conf, renamed.conf=app.conf]
    literals: [MODE=prod]
    options: {disableNameSuffixHash: true, labels: {generated: "yes"}}
""",
        },
    )
    objects = kustomize.render(tmp_path)
    assert [kustomize.object_name(o) for o in objects] == [
        "Deployment/web/web",
        "Service/web/web",
        "Namespace/web",
        "ConfigMap/web/web-config",
    ]
    deployment, service, namespace, config_map = objects
    assert deployment["metadata"]["labels"] == {"team": "ops", "tier": "front"}
    assert deployment["metadata"]["annotations"] == {"owner": "erich"}
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web", "team": "ops"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web", "team": "ops"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.local:5000/team/web:1.2.3"
    assert pod["initContainers"][0]["image"] == "mirror/busybox@sha256:abc"
    assert service["spec"]["selector"] == {"app": "web", "team": "ops"}
    assert "namespace" not in namespace["metadata"]
    assert config_map == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "web-config",
            "labels": {"generated": "yes", "team": "ops", "tier": "front"},
            "namespace": "web",
            "annotations": {"owner": "erich"},
        },
        "data": {"app.conf": "listen 80\n", "renamed.conf": "listen 80\n", "MODE": "prod"},
    }
    assert kustomize.validate_objects(objects, "1.33") == []


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("patches: []\nresources: []\n", "uses patches, which the offline renderer does not support"),
        ("resources: [https://github.com/x/y//base]\n", "remote resource 'https://github.com/x/y//base'"),
        ("resources: [missing.yaml]\n", "resource 'missing.yaml' does not exist"),
        ("configMapGenerator: [{name: c, literals: [A=1]}]\n", "needs options.disableNameSuffixHash: true"),
        ("images: [{name: web, newTag: 1.2}]\n", "images 'web' newTag must be a string (quote it)"),
        ("commonLabels: {version: 2}\n", "commonLabels must map names to strings"),
        ("kind: Component\n", "only Kustomization is supported"),
        ("resources: [.]\n", "kustomization includes itself"),
        ("labels: [{pairs: {a: b}, fieldSpecs: []}]\n", "labels entry uses fieldSpecs"),
    ],
)
def test_unsupported_or_broken_fields_fail_clearly(tmp_path: Path, kustomization: str, message: str) -> None:
    write(tmp_path, {"kustomization.yaml": kustomization})
    with pytest.raises(kustomize.RenderError) as caught:
        kustomize.render(tmp_path)
    assert message in str(caught.value)


def test_missing_kustomization_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(kustomize.RenderError, match=r"has no kustomization\.yaml"):
        kustomize.render(tmp_path)
    write(tmp_path, {"kustomization.yaml": "resources: [a.yaml]\n", "a.yaml": "kind: [unclosed\n"})
    with pytest.raises(kustomize.RenderError, match=r"a.yaml: line \d+ is not valid YAML"):
        kustomize.render(tmp_path)


def test_schema_validation_names_object_and_field() -> None:
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "web"},
        "spec": {
            "replicas": "one",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "spec": {"containers": [{"name": "web", "image": "web", "imagePullPolicy": "Always", "portz": []}]}
            },
        },
    }
    problems = kustomize.validate_objects([broken], "1.33")
    assert len(problems) == 1
    assert problems[0].startswith("Deployment/web/web: ")
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert kustomize.validate_objects([unknown], "1.33") == [
        "Widget/w: Couldn't find schema for kind Widget with api version example.com/v1 for kubernetes version 1.33"
    ]


def test_strict_validation_rejects_unknown_fields() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selectr": {"a": "b"}}}
    problems = kustomize.validate_objects([service], "1.33")
    assert problems
    assert "selectr" in problems[0]


@pytest.mark.parametrize("app", ["caddy", "homepage", "miniflux"])
def test_the_repo_manifests_render_and_validate(app: str) -> None:
    objects = kustomize.render(REPO / "argocd" / "manifests" / app)
    assert {o["metadata"]["namespace"] for o in objects} == {app}
    assert kustomize.validate_objects(objects, "1.33") == []
