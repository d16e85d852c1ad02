"""mise for real: the operator's entry points, mise's state kept out of HOME, and no tool disabled.

There is no network here: the read-only tasks run because they declare no tools (mise would otherwise
try, and fail, to download the pinned Pulumi CLI first).
"""

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
    "affected": "inv affected",
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


PULUMI_TASKS = {"tailnet-preview", "tailnet-up"}
OFFLINE_TASKS = ("check", "preflight", "plan", "affected")


def test_pulumi_is_pinned_on_the_tasks_that_run_it(mise_env: dict[str, str]) -> None:
    config = tomllib.loads((REPO / "mise.toml").read_text())
    assert "tools" not in config, "a top-level [tools] makes every `mise run` download it first"
    result = _mise(mise_env, "tasks", "ls", "--json")
    assert result.returncode == 0, result.stderr
    tools = {t["name"]: t["tools"] for t in json.loads(result.stdout)}
    assert {name for name, declared in tools.items() if "pulumi" in declared} == PULUMI_TASKS
    assert all(tools[name]["pulumi"][0].isdigit() for name in PULUMI_TASKS), tools  # a pinned version
    assert not any(tools[name] for name in OFFLINE_TASKS)


@pytest.mark.parametrize(
    ("task", "args"),
    [
        ("check", ["--layer=argocd"]),
        # argocd's preflight and plan stop at the missing kubeconfig: no traffic leaves this machine.
        ("preflight", ["--layer=argocd"]),
        ("plan", ["--layer=argocd"]),
        ("affected", ["--since=HEAD"]),
    ],
)
def test_read_only_tasks_run_with_no_tool_download(mise_env: dict[str, str], task: str, args: list[str]) -> None:
    """`mise run check|preflight|plan|affected` reach inv at once: the JSON document is inv's, and its
    exit code is mise's."""
    result = _mise(mise_env, "run", task, "--", *args, "--json")
    assert result.stdout.startswith("{"), f"inv did not run: {result.stderr}"
    document = json.loads(result.stdout)
    assert result.returncode == document["exit_code"], result.stderr
    assert "pulumi" not in result.stderr.lower(), result.stderr


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
