"""The README's quick start: exactly two commands, the first making a venv before any pip install (Debian's
python3 is externally managed), and .ci/run runs those very lines (it reads them from the README)."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO


def quickstart() -> list[str]:
    result = subprocess.run(["bash", str(REPO / ".ci" / "run"), "--print"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_ci_runs_exactly_the_readme_quick_start() -> None:
    commands = quickstart()
    assert len(commands) == 2
    readme = (REPO / "README.md").read_text()
    assert all(f"\n{command}\n" in readme for command in commands)


def test_the_first_command_installs_into_a_venv_it_made() -> None:
    first = quickstart()[0].split("#")[0]
    steps = [step.strip() for step in first.split("&&")]
    assert steps[0] == "python3 -m venv .venv"
    installs = [i for i, step in enumerate(steps) if "pip install" in step]
    assert installs, steps
    assert all(steps[i].startswith(("pip ", ".venv/bin/pip ", ".venv/bin/python -m pip ")) for i in installs)
    assert any(step.startswith((". .venv/bin/activate", "source .venv/bin/activate")) for step in steps[: installs[0]])
    assert steps[-1].endswith("inv check")


def test_scripts_test_never_pip_installs_into_the_system_python() -> None:
    script = (REPO / "scripts" / "test").read_text()
    assert "python3 -m venv .venv" in script
    assert "python3 -m pip" not in script
    assert ".venv/bin/python -m pip install" in script


def test_readme_says_mise_trust() -> None:
    assert "mise trust" in (REPO / "README.md").read_text()
