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


def findings_of(repo: Path, name: str) -> apps.Findings:
    app = apps.find(apps.load(repo), name)
    assert app is not None
    return apps.problems(
        app, repo=repo, repo_url=URL, branch="main", namespace="argocd", manifests_root="argocd/manifests"
    )


def problems_of(repo: Path, name: str) -> list[str]:
    return list(findings_of(repo, name).failures)


def test_repo_apps_load_and_are_sound() -> None:
    local = apps.load(REPO)
    assert apps.names(local) == ("blumeops", "caddy", "homepage", "miniflux")
    assert local[0].root
    assert local[0].path == "argocd/apps"
    for app in local:
        assert findings_of(REPO, app.name) == apps.Findings()
    assert apps.pairing_problems(local, REPO, "argocd/manifests") == apps.Findings()
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
    ]
    text = text.replace("https://github.com/someone/else.git", URL)
    path.write_text(text)
    found = findings_of(repo, "caddy")
    assert found.failures == (
        "caddy (argocd/apps/caddy.yaml): missing spec.project",
        "caddy (argocd/apps/caddy.yaml): source path 'argocd/manifests/cady' does not exist in this repo",
    )
    # The finalizer is our convention, not ArgoCD's requirement: a house rule.
    assert found.house == (
        "caddy (argocd/apps/caddy.yaml): no finalizer resources-finalizer.argocd.argoproj.io "
        "(deleting the app would leave its workloads)",
    )


def test_pairing_orphan_directory_is_a_house_rule_and_missing_directory_a_failure(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    (repo / "argocd/manifests/grafana").mkdir()
    shutil.rmtree(repo / "argocd/manifests/miniflux")
    found = apps.pairing_problems(apps.load(repo), repo, "argocd/manifests")
    assert found == apps.Findings(
        house=("argocd/manifests/grafana has no Application (add one, or keep shared bases elsewhere)",)
    )
    assert problems_of(repo, "miniflux") == [
        "miniflux (argocd/apps/miniflux.yaml): source path 'argocd/manifests/miniflux' does not exist in this repo"
    ]


def test_house_rules_warn_by_default_and_fail_when_strict(tmp_path: Path) -> None:
    repo = copy_tree(tmp_path)
    moved = repo / "argocd/deploy/caddy"
    shutil.move(repo / "argocd/manifests/caddy", moved)
    path = repo / "argocd/apps/caddy.yaml"
    text = path.read_text().replace("path: argocd/manifests/caddy", "path: argocd/deploy/caddy")
    path.write_text(text.replace("  finalizers:\n    - resources-finalizer.argocd.argoproj.io\n", ""))
    for strict, status in ((False, "warn"), (True, "fail")):
        c = make_context(repo, tmp_path / "s", strict=strict)
        results = {r.name: r for r in run_checks(layer.offline_checks(c), default_timeout=60)}
        assert results["app caddy"].status == status
        assert "no finalizer resources-finalizer.argocd.argoproj.io" in results["app caddy"].detail
        assert "source path 'argocd/deploy/caddy' is not argocd/manifests/<app>" in results["app caddy"].detail
        assert results["render caddy"].status == "ok"  # rendered where the Application says it is


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
        ("no committed secrets", "ok"),
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
