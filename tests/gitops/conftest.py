from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.gitops.helpers import GIT_IDENTITY, Repo


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    require_tool("git")
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return Repo(tmp_path)


@pytest.fixture
def repo_no_upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    require_tool("git")
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return Repo(tmp_path, upstream=False)
