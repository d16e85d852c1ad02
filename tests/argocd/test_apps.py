"""Local Application manifests: loading, required fields, repo/branch/path rules, pairing; offline checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blumeops_tasks.argocd import apps, layer
from blumeops_tasks.preflight import run_checks
from tests.argocd.conftest import make_context
from tests.conftest import REPO

URL = "https://forge.ops.eblu.me/eblume/blumeops.git"


def copy_tree(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "argocd", tmp_path / "argocd")
    return tmp_path


def problems_of(repo: Path, name: str) -> list[str]:
    app = apps.find(apps.load(repo), name)
    assert app is not None
    return apps.problems(
        app, repo=repo, repo_url=URL, branch="main", namespace="argocd", manifests_root="argocd/manifests"
    )


def test_repo_apps_load_and_are_sound() -> None:
    local = apps.load(REPO)
    assert apps.names(local) == ("blumeops", "caddy", "homepage", "miniflux")
    assert local[0].root
    assert local[0].path == "argocd/apps"
    for app in local:
        assert problems_of(REPO, app.name) == []
    assert apps.pairing_problems(local, REPO, "argocd/manifests") == []
    assert [a.name for a in local if a.automated] == ["homepage"]


def test_feature_branch_is_flagged_by_name(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    path = repo / "argocd/apps/miniflux.yaml"
    path.write_text(path.read_text().replace("targetRevision: main", "targetRevision: try-postgres-17"))
    assert problems_of(repo, "miniflux") == [
        "miniflux (argocd/apps/miniflux.yaml): targetRevision is 'try-postgres-17', not 'main' "
        "(left on a feature branch?)"
    ]


def test_wrong_repo_missing_path_missing_fields(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    path = repo / "argocd/apps/caddy.yaml"
    text = path.read_text().replace(URL, "https://github.com/someone/else.git")
    text = text.replace("path: argocd/manifests/caddy", "path: argocd/manifests/cady")
    text = text.replace("  project: default\n", "")
    text = text.replace("  finalizers:\n    - resources-finalizer.argocd.argoproj.io\n", "")
    path.write_text(text)
    assert problems_of(repo, "caddy") == [
        "caddy (argocd/apps/caddy.yaml): missing spec.project",
        "caddy (argocd/apps/caddy.yaml): repoURL 'https://github.com/someone/else.git' is not the configured "
        f"repo '{URL}'",
        "caddy (argocd/apps/caddy.yaml): source path 'argocd/manifests/cady' does not exist in this repo",
        "caddy (argocd/apps/caddy.yaml): child apps need the finalizer resources-finalizer.argocd.argoproj.io",
    ]


def test_pairing_flags_orphan_directory_and_missing_directory(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    (repo / "argocd/manifests/grafana").mkdir()
    shutil.rmtree(repo / "argocd/manifests/miniflux")
    found = apps.pairing_problems(apps.load(repo), repo, "argocd/manifests")
    assert found == [
        "argocd/manifests/grafana has no Application in argocd/apps/ (add grafana.yaml)",
        "miniflux has no manifests directory (argocd/manifests/miniflux)",
    ]


def test_unreadable_manifest_is_one_sentence(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    (repo / "argocd/apps/broken.yaml").write_text("a: [\n")
    with pytest.raises(apps.ManifestError, match=r"argocd/apps/broken.yaml is not valid YAML"):
        apps.load(repo)


def test_unknown_app_message() -> None:
    assert apps.unknown_app_message("grafana", ["caddy", "miniflux"]) == (
        "No app named 'grafana' in argocd/; known apps: caddy, miniflux."
    )


def test_offline_checks_pass_on_this_repo(tmp_path: Path) -> None:
    results = run_checks(layer.offline_checks(make_context(REPO, tmp_path)), default_timeout=60)
    assert [(r.name, r.status) for r in results] == [
        ("app blumeops", "ok"),
        ("app caddy", "ok"),
        ("app homepage", "ok"),
        ("app miniflux", "ok"),
        ("apps and manifests pair up", "ok"),
        ("render caddy", "ok"),
        ("render homepage", "ok"),
        ("render miniflux", "ok"),
    ]


def test_offline_checks_fail_on_invalid_manifest(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    service = repo / "argocd/manifests/caddy/service.yaml"
    service.write_text(service.read_text().replace("port: 80", "port: eighty"))
    results = {r.name: r for r in run_checks(layer.offline_checks(make_context(repo, tmp_path / "s")))}
    assert results["render caddy"].status == "fail"
    assert results["render caddy"].detail.startswith("Service/caddy/caddy: spec.ports.0.port: 'eighty'")
    assert results["render homepage"].status == "ok"
