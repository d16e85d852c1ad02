"""The hosts tests provision a disposable host, never the machine that runs them.

`runner_before` is taken before the session's first test host starts; the provisioning (and, in a
full run, every provisioning test before this file) happens on the hosts of tests/hosts/sshd.py.
This machine's Caddy and borgmatic configuration, /usr/local/bin, installed packages and mounts
must be exactly as they were, while the host got all of it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.hosts import runner
from tests.hosts.conftest import Provisioned
from tests.hosts.sshd import OVERLAID, start_sshd

pytestmark = pytest.mark.slow


def test_provisioning_left_this_machine_as_it_was(provisioned: Provisioned, runner_before: dict[str, object]) -> None:
    host = provisioned.host.sshd
    assert provisioned.first.returncode == 0, provisioned.first.stdout[-3000:]
    # The host did get the provision (so the comparison below is about a run that wrote things) ...
    assert "Managed by Ansible" in host.path("/etc/caddy/Caddyfile").read_text()
    assert host.path("/etc/borgmatic/config.yaml").is_file()
    assert host.path("/usr/local/bin/borgmatic").is_symlink()
    assert host.path("/run/sshd").is_dir()
    # ... and this machine has none of it.
    assert runner.differences(runner_before, runner.snapshot()) == []


def test_a_stopped_host_leaves_no_process_and_no_mount(tmp_path: Path) -> None:
    mounts_before = runner.mounts()
    sshd = start_sshd(tmp_path / "sshd")
    try:
        # Something the host starts in the background, detached from the SSH session.
        command = "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!"
        ssh = ["ssh", "-i", str(sshd.key), "-p", str(sshd.port), "-o", "StrictHostKeyChecking=no"]
        ssh += ["-o", f"UserKnownHostsFile={tmp_path / 'known'}"]
        started = subprocess.run(
            [*ssh, "root@127.0.0.1", command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        inside = sshd.processes()
        assert sshd.pid in inside
        assert len(inside) >= 3  # unshare, sshd, the detached sleep
        assert runner.mounts() == mounts_before  # the overlays exist only in the host's namespace
        # The overlaid directories look like this machine's (owner and mode: /tmp 1777, /root 0700).
        for name in OVERLAID:
            mine, theirs = Path("/", name).stat(), sshd.path(name).stat()
            assert (theirs.st_mode, theirs.st_uid) == (mine.st_mode, mine.st_uid), name
    finally:
        sshd.stop()
    assert sshd.processes() == []
    for pid in inside:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} of the host outlived it"
    assert runner.mounts() == mounts_before
