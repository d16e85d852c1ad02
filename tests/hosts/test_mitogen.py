"""Strategies: Ansible's own `free` by default; Mitogen only as the opt-in extra, through its stock
`mitogen_free` (ansible_mitogen/plugins/strategy, handed to Ansible by the tasks), with the ssh
ControlPath in ansible.cfg's ssh_args. Preflight fails when the configured strategy cannot load.

The sshd test runs ansible-playbook against the private sshd of conftest.py (this machine, real SSH).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from blumeops_tasks.hosts.checks import strategy_outcome
from blumeops_tasks.hosts.project import mitogen_strategy_dir
from tests.conftest import REPO, clean_environ, run_inv
from tests.hosts.conftest import SshdHost, close_masters

# A task whose output names the Python that ran the module: Mitogen's interpreter re-executes itself
# as "python3(mitogen:user@host:pid)"; Ansible's own AnsiballZ runs under a plain python3.
PARENT_PLAY = [
    {
        "name": "which interpreter runs modules",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "parent of the module's shell",
                "ansible.builtin.shell": "tr '\\0' ' ' < /proc/$PPID/cmdline",
                "register": "parent",
                "changed_when": False,
            },
            {"name": "show it", "ansible.builtin.debug": {"msg": "PARENT={{ parent.stdout }}"}},
        ],
    }
]


def strategy_row(env: dict[str, str]) -> dict[str, str]:
    result = run_inv("preflight", "--layer=hosts", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return checks["strategy"]


# -- offline ---------------------------------------------------------------------------------------


def test_the_repo_runs_ansibles_own_free_strategy() -> None:
    text = (REPO / "ansible.cfg").read_text()
    assert "\nstrategy = free\n" in text
    assert not (REPO / "strategy_plugins").exists()  # no patched copy of Mitogen's internals


def test_strategy_outcome() -> None:
    assert strategy_outcome("free", 0, "").status == "ok"
    broken = strategy_outcome("mitogen_free", 4, "")
    assert broken.status == "fail"
    assert "mitogen_free does not load" in broken.detail
    assert "pip install -e '.[mitogen]'" in broken.fix


def test_preflight_names_the_configured_strategy_and_fails_when_it_cannot_load(tmp_path: Path) -> None:
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state")})
    assert strategy_row(env)["status"] == "ok"
    mitogen = strategy_row({**env, "ANSIBLE_STRATEGY": "mitogen_free"})  # the extra is installed for the tests
    assert mitogen["status"] == "ok", mitogen
    assert mitogen["detail"] == "strategy mitogen_free (Mitogen's own)"
    missing = strategy_row({**env, "ANSIBLE_STRATEGY": "no_such_strategy"})
    assert missing["status"] == "fail"
    assert "no_such_strategy does not load" in missing["detail"]


def test_ansible_behind_a_version_managers_shim_is_asked_in_its_own_python(tmp_path: Path) -> None:
    """pyenv and asdf put a shell script named ansible-playbook first on PATH: the strategy is still loaded
    by the interpreter Ansible states in `--version`, not by the shim's shebang (bash)."""
    real = shutil.which("ansible-playbook")
    assert real, "ansible-core is part of the test install"
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "ansible-playbook"
    shim.write_text(f'#!/usr/bin/env bash\nexec {real} "$@"\n')
    shim.chmod(0o755)
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state")})
    env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"
    row = strategy_row(env)
    assert (row["status"], row["detail"]) == ("ok", "strategy free"), row


def test_without_the_extra_a_mitogen_strategy_fails_preflight(tmp_path: Path) -> None:
    """An ansible_mitogen that does not import (not installed, or refusing this ansible-core)."""
    shadow = tmp_path / "shadow" / "ansible_mitogen"  # found before the installed package (PYTHONPATH)
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    env = clean_environ(
        tmp_path,
        {
            "PYTHONPATH": f"{tmp_path / 'shadow'}:{REPO}",
            "ANSIBLE_STRATEGY": "mitogen_free",
            "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state"),
        },
    )
    row = strategy_row(env)
    assert row["status"] == "fail", row
    assert "mitogen_free does not load" in row["detail"]
    assert "[mitogen]" in row["fix"]


# -- over real ssh ---------------------------------------------------------------------------------


def test_mitogen_free_runs_modules_over_the_control_path_in_ssh_args(
    tmp_path: Path, sshd_host: SshdHost, isolated_env: Path
) -> None:
    strategies = mitogen_strategy_dir()
    assert strategies is not None, "the mitogen extra is part of the test install (pyproject: test)"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"indri": sshd_host.connection_vars()}}}))
    # A control directory of its own, short (a Unix socket path is limited to 108 bytes).
    control = Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))
    playbook = tmp_path / "parent.yml"
    playbook.write_text(yaml.safe_dump(PARENT_PLAY, sort_keys=False))
    env = {
        **clean_environ(isolated_env, {"ANSIBLE_HOME": str(sshd_host.ansible_home)}),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STRATEGY": "mitogen_free",
        "ANSIBLE_STRATEGY_PLUGINS": str(strategies),
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=60s -o ControlPath={control}/%C",
    }
    try:
        result = subprocess.run(
            ["ansible-playbook", "-i", str(inventory), str(playbook)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert re.search(r"PARENT=\S*python3[.\d]*\(mitogen:", result.stdout), result.stdout[-3000:]
        # Mitogen's ssh ran with the ControlPath from ssh_args: the master is there for the next run.
        sockets = list(control.iterdir())
        assert len(sockets) == 1, sockets
        check = subprocess.run(
            ["ssh", "-O", "check", "-o", f"ControlPath={sockets[0]}", "x"], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        # Ansible's own free strategy on the same host: modules under a plain python3.
        plain = subprocess.run(
            ["ansible-playbook", "-i", str(inventory), str(playbook)],
            cwd=REPO,
            env={**env, "ANSIBLE_STRATEGY": "free"},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
        assert "PARENT=" in plain.stdout
        assert "(mitogen:" not in plain.stdout
    finally:
        close_masters(control)
        shutil.rmtree(control, ignore_errors=True)
