"""The repo's strategy plugin (strategy_plugins/blumeops_mitogen.py): Mitogen for real, and without it.

The sshd tests here run ansible-playbook with the repo's ansible.cfg against the private sshd of
conftest.py (this machine over real SSH on 127.0.0.1).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from blumeops_tasks.hosts.checks import MITOGEN_STRATEGY, mitogen
from blumeops_tasks.hosts.project import ansible_strategy
from tests.conftest import REPO, clean_environ
from tests.hosts.conftest import SshdHost, close_masters, make_inventory
from tests.hosts.test_offline import project_fixture

PLUGIN = REPO / "strategy_plugins" / "blumeops_mitogen.py"

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


def load_plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("blumeops_mitogen_under_test", PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_playbook(playbook: Path, inventory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook)],
        cwd=REPO,
        env={**env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# -- offline ---------------------------------------------------------------------------------------


def test_ansible_cfg_selects_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    assert ansible_strategy(project_fixture()) == MITOGEN_STRATEGY
    monkeypatch.setenv("ANSIBLE_STRATEGY", "free")
    assert ansible_strategy(project_fixture()) == "free"


def test_preflight_outcome_for_mitogen() -> None:
    assert mitogen(MITOGEN_STRATEGY, "0.3.54").status == "ok"
    missing = mitogen(MITOGEN_STRATEGY, None)
    assert missing.status == "warn"
    assert "mitogen is not installed" in missing.detail
    assert "pip install -e ." in missing.fix
    assert mitogen("free", None).detail == "strategy free (Mitogen not used)"


def test_plugin_is_mitogen_free_with_the_adjustments() -> None:
    import ansible_mitogen.affinity
    import ansible_mitogen.strategy
    import ansible_mitogen.transport_config as transport
    from ansible.plugins.strategy.free import StrategyModule as Free

    plugin = load_plugin()
    assert issubclass(plugin.StrategyModule, ansible_mitogen.strategy.StrategyMixin)
    assert issubclass(plugin.StrategyModule, Free)
    # The ssh argument builders of both Mitogen connection specs add the ControlPath (once, even
    # when the plugin is loaded again).
    load_plugin()
    for spec in (transport.PlayContextSpec, transport.MitogenViaSpec):
        assert spec.ssh_args.__wrapped__.__qualname__.endswith(".ssh_args")
    # The multiplexer builds the bootstrap preamble as it starts (wrapped once, like ssh_args).
    from ansible_mitogen.process import MuxProcess

    assert MuxProcess._setup_services.__wrapped__.__qualname__ == "MuxProcess._setup_services"
    # Pinning is off on controllers with fewer than four CPUs (this repo's test machines have two).
    unpinned = type(ansible_mitogen.affinity.policy) is ansible_mitogen.affinity.Policy
    assert unpinned == ((os.cpu_count() or 1) < plugin.PINNING_MIN_CPUS)


def test_the_preamble_is_built_in_the_background_after_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import mitogen.master  # in a master, the core source is minified: the slow part
    import mitogen.parent

    plugin = load_plugin()
    calls: list[str] = []
    monkeypatch.setattr(mitogen.parent, "_core_source_partial", None)
    wrapped = plugin._warming_preamble(calls.append)
    wrapped("mux")
    assert calls == ["mux"]  # the multiplexer's own setup runs first, unchanged
    [thread] = [t for t in threading.enumerate() if t.name == plugin.PREAMBLE_THREAD]
    thread.join(timeout=30)
    assert mitogen.parent._core_source_partial is not None


def test_control_path_is_added_only_where_the_ssh_connection_would(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ansible.plugins.loader import connection_loader

    connection_loader.get("ssh", class_only=True)  # registers the ssh options, as Mitogen's ssh does in a run
    plugin = load_plugin()
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp"))
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH", "%(directory)s/%%C")
    persist = ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s"]
    assert plugin.control_path_args(persist) == ["-o", f"ControlPath={tmp_path / 'cp'}/%C"]
    assert (tmp_path / "cp").is_dir()
    assert plugin.control_path_args(["-o", "ServerAliveInterval=15"]) == []  # no multiplexing asked for
    assert plugin.control_path_args([*persist, "-o", "ControlPath=/elsewhere/%C"]) == []  # the operator's own
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH", "")
    assert plugin.control_path_args(persist) == []  # ssh would hash host/port/user: not reproduced


# -- over real ssh ---------------------------------------------------------------------------------


def test_modules_run_in_mitogen_over_the_shared_control_master(
    tmp_path: Path, sshd_host: SshdHost, isolated_env: Path
) -> None:
    inv = make_inventory(tmp_path, sshd_host, isolated_env)
    # A control directory of its own (no master from another test yet), with a short path: a Unix
    # socket path is limited to 108 bytes and ssh refuses longer ControlPaths.
    control = Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))
    playbook = tmp_path / "parent.yml"
    playbook.write_text(yaml.safe_dump(PARENT_PLAY, sort_keys=False))
    try:
        result = run_playbook(playbook, inv.path, {**inv.env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "PARENT=/usr/bin/python3(mitogen:" in result.stdout, result.stdout[-3000:]
        assert "mitogen is not installed" not in result.stdout + result.stderr
        # Mitogen's ssh ran with the ControlPath Ansible's ssh connection uses: the master is there
        # for the next run (and for `inv preflight`, which reaches hosts through the same path).
        sockets = list(control.iterdir())
        assert len(sockets) == 1, sockets
        check = subprocess.run(
            ["ssh", "-O", "check", "-o", f"ControlPath={sockets[0]}", "x"], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
    finally:
        close_masters(control)
        shutil.rmtree(control, ignore_errors=True)


@pytest.mark.parametrize(
    ("shadow_init", "warning"),
    [
        ('raise ImportError("hidden by the test")\n', "mitogen is not installed: running the plain free strategy"),
        (
            "from ansible.errors import AnsibleError\n"
            'raise AnsibleError("Your Ansible version (2, 99) is too recent.")\n',
            "mitogen cannot run with this ansible-core (Your Ansible version (2, 99) is too recent.)",
        ),
    ],
    ids=["not-installed", "refuses-ansible-core"],
)
def test_without_a_usable_mitogen_the_plugin_runs_plain_free_and_says_so(
    tmp_path: Path, isolated_env: Path, shadow_init: str, warning: str
) -> None:
    shadow = tmp_path / "shadow" / "ansible_mitogen"  # found before the installed package (PYTHONPATH)
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(shadow_init)
    inventory = tmp_path / "hosts.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": local}}}))
    playbook = tmp_path / "parent.yml"
    playbook.write_text(yaml.safe_dump(PARENT_PLAY, sort_keys=False))
    env = clean_environ(isolated_env, {"PYTHONPATH": str(tmp_path / "shadow"), "ANSIBLE_HOME": str(tmp_path / "ah")})
    result = run_playbook(playbook, inventory, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert warning in " ".join(result.stderr.split()), result.stderr
    assert "PARENT=" in result.stdout
    assert "(mitogen:" not in result.stdout
