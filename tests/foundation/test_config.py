"""Config layering: default < invoke.yaml < INVOKE_BLUMEOPS_* < flag; .env never overrides."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context

from blumeops_tasks.config import ROOT_DEFAULTS, load_env_file, setting
from tests.conftest import REPO, run_inv


def _project(tmp_path: Path, invoke_yaml: str | None = None) -> Path:
    shutil.copy(REPO / "tasks.py", tmp_path / "tasks.py")
    if invoke_yaml is not None:
        (tmp_path / "invoke.yaml").write_text(invoke_yaml)
    return tmp_path


def _settings(project: Path, **env: str) -> dict:  # type: ignore[type-arg]
    result = run_inv("--search-root", str(project), "config", "--json", env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_default(tmp_path: Path) -> None:
    settings = _settings(_project(tmp_path))
    assert settings["preflight_timeout"] == ROOT_DEFAULTS["preflight_timeout"]
    assert settings["root"] == str(tmp_path)


def test_invoke_yaml_beats_default(tmp_path: Path) -> None:
    project = _project(tmp_path, "blumeops:\n  preflight_timeout: 3\n  state_dir: /var/tmp/state\n")
    settings = _settings(project)
    assert settings["preflight_timeout"] == 3
    assert settings["state_dir"] == "/var/tmp/state"


def test_environment_beats_invoke_yaml(tmp_path: Path) -> None:
    project = _project(tmp_path, "blumeops:\n  preflight_timeout: 3\n")
    settings = _settings(project, INVOKE_BLUMEOPS_PREFLIGHT_TIMEOUT="7")
    assert settings["preflight_timeout"] == 7.0


def test_flag_beats_everything() -> None:
    ctx = Context(Config(overrides={"blumeops": {"preflight_timeout": 7.0}}))
    assert setting(ctx, "preflight_timeout") == 7.0
    assert setting(ctx, "preflight_timeout", 1.5) == 1.5


def test_missing_setting_is_one_sentence() -> None:
    from invoke.exceptions import Exit

    with pytest.raises(Exit) as info:
        setting(Context(Config(overrides={"blumeops": {}})), "hosts.inventory")
    assert "blumeops.hosts.inventory is missing" in str(info.value.message)


def test_dotenv_fills_but_never_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TAILSCALE_TAILNET=from-file\nTAILSCALE_API_KEY=tskey-from-file\n")
    monkeypatch.setenv("TAILSCALE_TAILNET", "from-env")
    monkeypatch.delenv("TAILSCALE_API_KEY", raising=False)
    ctx = Context(Config(overrides={"blumeops": {"root": str(tmp_path), "env_file": ".env"}}))
    assert load_env_file(ctx) == tmp_path / ".env"
    assert os.environ["TAILSCALE_TAILNET"] == "from-env"
    assert os.environ["TAILSCALE_API_KEY"] == "tskey-from-file"
    monkeypatch.delenv("TAILSCALE_API_KEY")


def test_no_dotenv_is_fine(tmp_path: Path) -> None:
    ctx = Context(Config(overrides={"blumeops": {"root": str(tmp_path), "env_file": ".env"}}))
    assert load_env_file(ctx) is None
