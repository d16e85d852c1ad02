from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.gitops.helpers import GIT_IDENTITY, Repo


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A real work tree with a bare remote (tests/gitops/helpers.py), git identity from the environment."""
    require_tool("git")
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return Repo(tmp_path)
