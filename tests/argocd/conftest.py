"""Fixtures: a kmock API with the scripted controller, a kubeconfig for it, a pushed git clone."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import Context

from blumeops_tasks.argocd.layer import DEFAULTS
from tests.argocd.fake_argo import FakeArgo
from tests.conftest import REPO, require_tool

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Operator",
    "GIT_AUTHOR_EMAIL": "op@example.invalid",
    "GIT_COMMITTER_NAME": "Test Operator",
    "GIT_COMMITTER_EMAIL": "op@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepo:
    """A work tree holding a copy of this repo's argocd/ tree, pushed to a bare `origin`."""

    def __init__(self, base: Path) -> None:
        self.remote = base / "remote.git"
        self.root = base / "work"
        self.root.mkdir(parents=True)
        self.git("init", "-q", "--bare", "-b", "main", str(self.remote), cwd=base)
        self.git("init", "-q", "-b", "main")
        shutil.copytree(REPO / "argocd", self.root / "argocd")
        (self.root / "README.md").write_text("# blumeops\n", encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "initial")
        self.git("remote", "add", "origin", str(self.remote))
        self.git("push", "-q", "-u", "origin", "main")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd or self.root, capture_output=True, text=True, check=True
        ).stdout.strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def commit_file(self, path: str, text: str, message: str) -> str:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        self.git("add", path)
        self.git("commit", "-q", "-m", message)
        return self.head()


@pytest.fixture(autouse=True)
def fresh_json_state() -> None:
    """Each test is its own process as far as `--json` goes: no document printed yet."""
    from blumeops_tasks import console

    console._json_printed.clear()


@pytest.fixture
def fake() -> Iterator[FakeArgo]:
    server = FakeArgo()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def gitrepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    require_tool("git")
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    return GitRepo(tmp_path / "repo")


def make_context(root: Path, state: Path, *, strict: bool = False, **argocd: Any) -> Context:
    settings: dict[str, Any] = {
        "root": str(root),
        "state_dir": str(state),
        "journal": "journal.jsonl",
        "env_file": ".env",
        "check_timeout": 60.0,
        "preflight_timeout": 10.0,
        "lint": {"strict": strict},
        "argocd": {**copy.deepcopy(DEFAULTS), **argocd},
    }
    return Context(config=Config(overrides={"blumeops": settings}))


@pytest.fixture
def kubeconfig(fake: FakeArgo, tmp_path: Path) -> Path:
    return fake.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def ctx(gitrepo: GitRepo, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("LOGNAME", "tester")
    return make_context(
        gitrepo.root,
        tmp_path / "state",
        kubeconfig=str(kubeconfig),
        request_timeout=5.0,
        refresh_timeout=3.0,
        sync_timeout=5.0,
    )
