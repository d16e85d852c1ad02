"""hosts.run and hosts.status through fabric, with the inventory's connection settings (the disposable host)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import require_tool, run_inv
from tests.hosts.conftest import HostsInventory, SshdHost
from tests.hosts.sshd import free_port

pytestmark = pytest.mark.slow


def test_run_streams_output_and_passes_exit_code(inventory: HostsInventory) -> None:
    result = run_inv(
        "hosts.run", "--host=indri", "--cmd=echo hello from $(hostname); echo oops >&2; exit 3", env=inventory.env
    )
    assert result.returncode == 3
    assert "hello from" in result.stdout
    assert "oops" in result.stderr


def test_run_unknown_host_is_one_sentence(inventory: HostsInventory) -> None:
    result = run_inv("hosts.run", "--host=nosuch", "--cmd=true", env=inventory.env)
    assert result.returncode == 1
    assert result.stderr.strip() == "Host 'nosuch' is not in the inventory (known hosts: indri)."


def test_status_reports_running_services_and_ports(inventory: HostsInventory, sshd_host: SshdHost) -> None:
    require_tool("prometheus-node-exporter")
    port = free_port()
    inventory.set_host_var("node_exporter_listen_address", f"127.0.0.1:{port}")
    down = run_inv("hosts.status", "--host=indri", "--json", env=inventory.env)
    assert down.returncode == 1
    before = {s["name"]: s for s in json.loads(down.stdout)["services"]}
    assert before["node_exporter"]["ports"] == {f"127.0.0.1:{port}": False}
    # Started on the test host (its own PID namespace: the status probe's pgrep sees only the host).
    process = sshd_host.sshd.spawn("prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}")
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        up = run_inv("hosts.status", "--host=indri", "--json", env=inventory.env)
    finally:
        process.stop()
    document = json.loads(up.stdout)
    services = {s["name"]: s for s in document["services"]}
    assert services["node_exporter"]["healthy"] is True
    assert services["node_exporter"]["running"] is True
    # No init system here: nothing starts caddy, and status says so (exit 1).
    assert services["caddy"]["healthy"] is False
    assert up.returncode == 1
    assert document["healthy"] is False
