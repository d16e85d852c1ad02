"""The built wheel in a fresh venv, as an operator installs it: shared by tests/adopt/test_wheel.py and
bench/homelab_bench.py (which times what the operator runs: byte-compiled by pip, never the checkout).

`build_wheel` runs `pip wheel --no-deps` on a copy of the sources (the checkout stays untouched by the
build). `install_wheel` makes a venv holding the wheel (non-editable, compiled by pip as every install
is); the dependencies are this interpreter's, reused offline: its site-packages as plain paths after the
venv's own. Their .pth files are not run, so an editable blumeops_tasks installed there cannot stand in
for the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "blumeops_tasks"


def build_wheel(source: Path, out: Path) -> Path:
    """The wheel of this checkout's package, built from a copy in `source` into `out`."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip wheel failed: {result.stderr}")
    (built,) = out.glob("blumeops_tasks-*.whl")
    return built


def site_packages(venv: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A fresh venv at `venv` holding `wheel`; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    parents = [path for path in sys.path if path.endswith(("site-packages", "dist-packages")) and Path(path).is_dir()]
    (site_packages(venv) / "_blumeops_test_dependencies.pth").write_text("\n".join(parents) + "\n")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--force-reinstall", str(wheel)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(pip, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pip install of the wheel failed: {result.stderr}")
    return python
