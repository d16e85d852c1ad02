"""Shared fixtures: every test runs with the operator's own environment hidden."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HIDDEN_PREFIXES = ("PULUMI_", "TAILSCALE_", "KUBE", "ANSIBLE_", "INVOKE_", "MISE_", "SSH_", "BLUMEOPS_")


def clean_environ(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without the operator's tool settings, with HOME pointing at `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(HIDDEN_PREFIXES)}
    env["HOME"] = str(home)
    env["KUBECONFIG"] = str(home / "no-kubeconfig")
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hide HOME, kubeconfig, SSH config and PULUMI_/TAILSCALE_/ANSIBLE_/INVOKE_ variables."""
    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith(HIDDEN_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(home / "no-kubeconfig"))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


def require_tool(name: str) -> str:
    """Path of a tool the test needs; missing, the test fails loudly (never skips)."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed; ./scripts/test installs it")
    return path


def run_inv(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path = REPO, timeout: float = 300, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `inv ARGS` for real in a subprocess (no terminal: stdin is a pipe or /dev/null)."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        env=dict(env) if env is not None else dict(os.environ),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def mise_environ(base: Mapping[str, str], state: Path) -> dict[str, str]:
    """`base` plus mise's own state under `state` (never HOME) and the repo trusted. No tool is disabled:
    mise.toml declares tools per task, so the tasks the tests run need no download."""
    env = dict(base)
    env.update({f"MISE_{d.upper()}_DIR": str(state / f"mise-{d}") for d in ("data", "state", "cache", "config")})
    env["MISE_TRUSTED_CONFIG_PATHS"] = str(REPO)
    return env


def run_mise(*args: str, env: Mapping[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the real mise binary in the repo, no terminal."""
    return subprocess.run(
        [require_tool("mise"), *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
