"""`inv init` writes what an existing repo needs to adopt blumeops, and never overwrites a file."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from blumeops_tasks import adopt, layers
from tests.conftest import REPO, clean_environ, mise_environ, require_tool, run_inv

pytestmark = pytest.mark.slow


def init_in(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m blumeops_tasks init` in a repo that has no tasks.py yet."""
    return subprocess.run(
        [sys.executable, "-m", "blumeops_tasks", "init"],
        cwd=repo,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_init_writes_the_files_of_an_adopted_repo(tmp_path: Path, isolated_env: Path) -> None:
    env = clean_environ(isolated_env)
    result = init_in(tmp_path, env)
    assert result.returncode == 0, result.stderr
    settings = yaml.safe_load((tmp_path / "invoke.yaml").read_text())["blumeops"]
    example = (tmp_path / ".env.example").read_text()
    for layer in layers.all_layers():
        assert set(settings[layer.name]) == set(layer.path_settings)
        assert all(f"# {name}=" in example for name in (*layer.secret_env, *layer.env))
    assert {".env", ".blumeops/"} <= set((tmp_path / ".gitignore").read_text().split())
    tasks = tomllib.loads((tmp_path / "mise.toml").read_text())["tasks"]
    assert {"check", "preflight", "plan", "affected"} <= set(tasks)
    # the written tasks.py is a working namespace: `inv --list` and `inv init` itself
    listed = run_inv("--list", env={**env, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {"check", "init", "hosts.preview"} <= set(listed.stdout.split())


def test_init_never_overwrites_and_only_adds_missing_mise_tasks(tmp_path: Path, isolated_env: Path) -> None:
    env = clean_environ(isolated_env)
    mine = {
        "tasks.py": "# my own tasks\n",
        "invoke.yaml": "blumeops:\n  hosts:\n    inventory: ansible/inventory\n",
        ".env.example": "# mine\n",
        ".gitignore": "node_modules/\n.env",
        "mise.toml": '[tools]\nnode = "22"\n\n[tasks.check]\nrun = "make check"\n',
    }
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    result = init_in(tmp_path, env)
    assert result.returncode == 0, result.stderr
    for name in ("tasks.py", "invoke.yaml", ".env.example"):
        assert (tmp_path / name).read_text() == mine[name]
    assert (tmp_path / ".gitignore").read_text().startswith(mine[".gitignore"] + "\n")
    assert (tmp_path / ".gitignore").read_text().split().count(".env") == 1
    mise = (tmp_path / "mise.toml").read_text()
    assert mise.startswith(mine["mise.toml"])
    config = tomllib.loads(mise)
    assert config["tasks"]["check"]["run"] == "make check"
    assert config["tasks"]["plan"]["run"] == "inv plan"

    again = init_in(tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "mise.toml").read_text() == mise


def test_a_mise_toml_that_does_not_parse_is_left_alone() -> None:
    merged, added = adopt.merge_mise("[tasks.check\n", adopt.template("mise.toml.tmpl"))
    assert (merged, added) == (None, [])


def test_the_written_mise_tasks_run_offline_with_real_mise(tmp_path: Path, isolated_env: Path) -> None:
    """The template declares tools per task too: `mise run check` in an init'ed repo starts with no download."""
    env = clean_environ(isolated_env, {"PYTHONPATH": str(REPO)})
    assert init_in(tmp_path, env).returncode == 0
    tools = {
        name: task.get("tools", {}) for name, task in tomllib.loads(adopt.template("mise.toml.tmpl"))["tasks"].items()
    }
    assert not any(tools[name] for name in ("check", "preflight", "plan", "affected"))
    mise_env = {**mise_environ(env, tmp_path / "mise-state"), "MISE_TRUSTED_CONFIG_PATHS": str(tmp_path)}
    result = subprocess.run(
        [require_tool("mise"), "run", "check", "--", "--json"],
        cwd=tmp_path,
        env=mise_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.stdout.startswith("{"), f"inv did not run: {result.stderr}"
    # inv ran (its paths rows fail: this repo has no native files yet) and mise passed its exit code on
    assert result.returncode == json.loads(result.stdout)["exit_code"] == 1
