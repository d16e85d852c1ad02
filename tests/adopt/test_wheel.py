"""The built wheel works anywhere: built from this source, installed non-editable in a fresh venv, it runs
`inv --list`, `inv check` and a hosts preview in a separate repo made of native files (tests/fixtures/homelab).

The venv reuses the installed dependencies (no download), but blumeops_tasks itself must come from the wheel:
every `inv` here runs without PYTHONPATH, from outside this checkout, and the module file is asserted to be
inside the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adopt.helpers import adopted_repo, make_hosts_unreachable
from tests.conftest import REPO, clean_environ
from tests.wheel_venv import PACKAGE, build_wheel, install_wheel

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    env: dict[str, str]
    repo: Path

    def inv(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`inv ARGS` as the venv runs it (`python -m invoke` is what the `inv` script does), in the repo."""
        return subprocess.run(
            [str(self.python), "-m", "invoke", *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def package_files() -> set[str]:
    """Every file of the package in this checkout, as a wheel names it."""
    return {
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps` of a copy of the sources (the checkout stays untouched by the build)."""
    return build_wheel(tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv holding the wheel (non-editable); the dependencies are this interpreter's, reused offline."""
    root = tmp_path_factory.mktemp("wheel-venv")
    venv = root / "venv"
    python = install_wheel(wheel, venv)
    home = root / "home"
    home.mkdir()
    inv_env = clean_environ(home, {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)})
    inv_env.pop("PYTHONPATH", None)
    repo = adopted_repo(root / "homelab", inv_env)
    return Installed(venv, python, inv_env, repo)


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith(f"{PACKAGE.name}/")}
    assert package_files() - shipped == set(), "files of the package missing from the wheel"
    assert f"{PACKAGE.name}/py.typed" in shipped


def test_blumeops_tasks_is_imported_from_the_wheel(installed: Installed) -> None:
    modules = ("namespace", "gitops.session", "hosts.workflow", "argocd.checks", "tailnet.workflow")
    probe = f"import importlib; print(*(importlib.import_module('blumeops_tasks.' + m).__file__ for m in {modules}))"
    result = subprocess.run(
        [str(installed.python), "-c", probe],
        cwd=installed.repo,
        env=installed.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    files = [Path(name).resolve() for name in result.stdout.split()]
    assert len(files) == 5
    assert all(path.is_relative_to(installed.venv.resolve()) for path in files), result.stdout


def test_inv_list_runs_from_the_wheel(installed: Installed) -> None:
    result = installed.inv("--list")
    assert result.returncode == 0, result.stderr
    assert {"check", "plan", "hosts.preview", "argocd.sync", "tailnet.up"} <= set(result.stdout.split())


def test_inv_check_passes_on_a_native_repo(installed: Installed) -> None:
    result = installed.inv("check", "--json")
    document = json.loads(result.stdout)
    failures = [row for row in document["checks"] if row["status"] == "fail"]
    assert result.returncode == 0, failures or result.stderr
    assert {row["layer"] for row in document["checks"]} == {"tailnet", "hosts", "argocd"}


def test_hosts_preview_reaches_ansible_with_the_packaged_plugins(installed: Installed) -> None:
    """Every host on a closed loopback port: the preview must get as far as Ansible's own unreachable result,
    which only the packaged callback reports (an import or plugin error stops earlier, with another message)."""
    make_hosts_unreachable(installed.repo, installed.env)
    result = installed.inv("hosts.preview", "--json")
    document = json.loads(result.stdout)
    assert result.returncode == 1, document
    assert document["exit_code"] == 1
    # The plan's error (top-level or the layer's), as the callback's results put it.
    assert "was unreachable during task" in json.dumps(document), document
    for marker in ("No module named", "Traceback", "could not be loaded", "Invalid play strategy"):
        assert marker not in result.stdout + result.stderr
