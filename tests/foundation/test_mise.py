"""mise for real: the operator's entry points, with tools disabled and mise's state kept out of HOME."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO, clean_environ, mise_environ, run_mise

ENTRY_POINTS = {
    "check": "inv check",
    "preflight": "inv preflight",
    "plan": "inv plan",
    "tailnet-preview": "inv tailnet.preview",
    "tailnet-up": "inv tailnet.up",
    "provision-indri": "inv hosts.provision --host=indri",
    "argocd-sync": "inv argocd.sync",
}


@pytest.fixture
def mise_env(tmp_path: Path, isolated_env: Path) -> dict[str, str]:
    return mise_environ(clean_environ(isolated_env), tmp_path)


def _mise(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_mise(*args, env=env)


def test_tasks_are_listed_with_descriptions(mise_env: dict[str, str]) -> None:
    result = _mise(mise_env, "tasks", "ls", "--json")
    assert result.returncode == 0, result.stderr
    tasks = {t["name"]: t for t in json.loads(result.stdout)}
    assert set(ENTRY_POINTS) <= set(tasks)
    for name, command in ENTRY_POINTS.items():
        assert tasks[name]["run"] == [command]
        assert tasks[name]["description"], f"mise task {name} has no description"


def test_pulumi_is_pinned_for_operators() -> None:
    assert "pulumi" in tomllib.loads((REPO / "mise.toml").read_text())["tools"]


def test_run_check_runs_inv_check(mise_env: dict[str, str]) -> None:
    result = _mise(mise_env, "run", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Offline checks" in result.stdout


def test_extra_arguments_pass_through(mise_env: dict[str, str]) -> None:
    result = _mise(mise_env, "run", "check", "--", "--json", "--layer=tailnet")
    assert result.returncode == 0, result.stderr
    assert {row["layer"] for row in json.loads(result.stdout)["checks"]} == {"tailnet"}


def test_exit_code_passes_through(mise_env: dict[str, str]) -> None:
    result = _mise(mise_env, "run", "plan", "--", "--layer=nope")
    assert result.returncode == 1
    assert "Unknown layer 'nope'" in result.stderr
