"""End to end: the shipped indri playbook over real SSH to the private sshd (see conftest.py).

No init system here: the roles' service manager resolves to "none", so services are not started;
instead each config is checked by its service's own validator (caddy validate, borgmatic config
validate, node_exporter's flag parser), here and inside the roles before files are put in place.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, mise_environ, run_inv, run_mise
from tests.hosts.conftest import TEST_PASSPHRASE, HostsInventory, SshdHost, make_inventory
from tests.hosts.sshd import unused_port

pytestmark = pytest.mark.slow

CADDYFILE = Path("/etc/caddy/Caddyfile")
BORGMATIC_DIR = Path("/etc/borgmatic")
NODE_ARGS = Path("/etc/default/prometheus-node-exporter")
MANAGED = "Managed by Ansible from the blumeops repo"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def snapshot() -> dict[str, str]:
    return {
        str(p): digest(p) for p in (CADDYFILE, BORGMATIC_DIR / "config.yaml", BORGMATIC_DIR / "passphrase", NODE_ARGS)
    }


def validate(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def preview_json(inv: HostsInventory, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_inv("hosts.preview", "--host=indri", "--json", *args, env=inv.env)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def changes(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for layer in document["layers"] for t in layer["targets"] for c in t["changes"]]


@pytest.fixture(scope="module")
def provisioned(sshd_host: SshdHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostsInventory, Any]]:
    """Reset the managed files, then provision the shipped playbook once (first run: changes)."""
    for path in (CADDYFILE, NODE_ARGS, BORGMATIC_DIR / "config.yaml", BORGMATIC_DIR / "passphrase"):
        path.unlink(missing_ok=True)
    root = tmp_path_factory.mktemp("provisioned")
    home = root / "home"
    home.mkdir()
    inv = make_inventory(root, sshd_host, home)
    result = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
    return inv, result


def test_provision_end_to_end(provisioned: tuple[HostsInventory, Any]) -> None:
    _inv, result = provisioned
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Provisioned indri." in result.stdout
    assert "PLAY RECAP" in result.stdout  # ansible's own human output is streamed as it is
    # Every managed file is in place, headed with ansible_managed.
    caddyfile = CADDYFILE.read_text()
    assert MANAGED in caddyfile
    assert "reverse_proxy 127.0.0.1:3000" in caddyfile
    assert "grafana.ops.eblu.me {" in caddyfile
    assert 'ARGS="--web.listen-address=0.0.0.0:9100"' in NODE_ARGS.read_text()
    assert MANAGED in (BORGMATIC_DIR / "config.yaml").read_text()
    passphrase = BORGMATIC_DIR / "passphrase"
    assert passphrase.read_text() == TEST_PASSPHRASE + "\n"
    assert oct(passphrase.stat().st_mode & 0o777) == "0o600"
    assert TEST_PASSPHRASE not in result.stdout + result.stderr
    # No init system on the test host: the services' own validators accept the configs.
    checked = validate("caddy", "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE))
    assert checked.returncode == 0, checked.stderr
    checked = validate("borgmatic", "config", "validate", "--config", str(BORGMATIC_DIR / "config.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = validate("sh", "-c", f". {NODE_ARGS} && exec prometheus-node-exporter $ARGS --version")
    assert checked.returncode == 0, checked.stderr
    # The summary table names the host and its recap.
    assert "Provisioned" in result.stdout
    assert "indri" in result.stdout


def test_second_run_changes_nothing(provisioned: tuple[HostsInventory, Any], tmp_path: Path) -> None:
    inv, _first = provisioned
    again = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
    assert again.returncode == 0, again.stderr
    assert "Nothing to change: indri already in line with the repo." in again.stdout, again.stdout[-6000:]
    # The real apply (not check mode) through the results callback: changed=0.
    results = tmp_path / "results.json"
    env = {**inv.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "BLUMEOPS_ANSIBLE_RESULTS": str(results)}
    bare = subprocess.run(
        ["ansible-playbook", "-i", str(inv.path), "playbooks/indri.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bare.returncode == 0, bare.stdout[-2000:]
    stats = json.loads(results.read_text())["stats"]["indri"]
    assert stats["changed"] == 0, stats
    assert stats["failures"] == 0, stats


def test_changed_variable_shows_as_diff_of_the_right_file(provisioned: tuple[HostsInventory, Any]) -> None:
    inv, _first = provisioned
    before = snapshot()
    inv.set_host_var("caddy_admin_address", "localhost:2020")
    try:
        code, document = preview_json(inv)
    finally:
        inv.set_host_var("caddy_admin_address", "localhost:2019")
    assert code == 2
    found = changes(document)
    assert [c["detail"] for c in found] == [str(CADDYFILE)], found
    assert found[0]["action"] == "update"
    assert "-\tadmin localhost:2019" in found[0]["diff"]
    assert "+\tadmin localhost:2020" in found[0]["diff"]
    assert document["layers"][0]["targets"][0]["target"] == "indri"
    assert snapshot() == before  # the preview left the host untouched


def test_no_changes_preview_exits_zero(provisioned: tuple[HostsInventory, Any]) -> None:
    inv, _first = provisioned
    code, document = preview_json(inv)
    assert code == 0, document
    assert changes(document) == []


def test_tags_caddy_runs_only_caddy(provisioned: tuple[HostsInventory, Any]) -> None:
    inv, _first = provisioned
    inv.set_host_var("caddy_http_port", 8081)
    inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9101")
    try:
        code, document = preview_json(inv, "--tags=caddy")
        assert code == 2
        assert {c["resource"].split(" : ")[0] for c in changes(document)} == {"caddy"}
        result = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", "--tags=caddy", env=inv.env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        assert "TASK [caddy : " in result.stdout
        # Ansible tags each role's argument-spec validation `always`; every other task of the other
        # roles is skipped by --tags caddy.
        other = re.findall(r"TASK \[(node_exporter|borgmatic) : (?!Validating arguments)", result.stdout)
        assert other == []
        assert "http_port 8081" in CADDYFILE.read_text()
        assert "0.0.0.0:9100" in NODE_ARGS.read_text()  # node_exporter's change was not applied
    finally:
        inv.set_host_var("caddy_http_port", 80)
        inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9100")
        restore = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
        assert restore.returncode == 0, restore.stderr


def test_failing_task_exits_with_ansible_code_naming_the_task(provisioned: tuple[HostsInventory, Any]) -> None:
    """Check mode cannot run caddy validate; the real apply does, and the bad Caddyfile never lands."""
    inv, _first = provisioned
    before = snapshot()
    inv.set_host_var("caddy_admin_address", "not a valid address")
    try:
        result = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
    finally:
        inv.set_host_var("caddy_admin_address", "localhost:2019")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "ansible-playbook exited 2" in message
    assert "task 'caddy : Caddy | Caddyfile (validated with caddy validate before it is put in place)'" in message
    assert "failed on host indri" in message
    assert snapshot() == before


def test_failing_assert_fails_preview_naming_task_and_host(provisioned: tuple[HostsInventory, Any]) -> None:
    inv, _first = provisioned
    inv.set_host_var("caddy_sites", [{"name": "broken", "address": "broken.example"}])
    try:
        result = run_inv("hosts.preview", "--host=indri", env=inv.env)
    finally:
        original = yaml.safe_load((REPO / "inventory/host_vars/indri.yml").read_text())["caddy_sites"]
        inv.set_host_var("caddy_sites", original)
    assert result.returncode == 1
    assert (
        "task 'caddy : Caddy | assert every site names an address and at least one backend' failed on host indri"
        in (result.stderr)
    )


def test_provision_without_yes_and_terminal_refuses(provisioned: tuple[HostsInventory, Any]) -> None:
    inv, _first = provisioned
    before = snapshot()
    inv.set_host_var("caddy_http_port", 8082)
    try:
        result = run_inv("hosts.provision", "--host=indri", "--allow-dirty", env=inv.env)
    finally:
        inv.set_host_var("caddy_http_port", 80)
    assert result.returncode == 1
    assert "Refusing to provision indri without confirmation" in result.stderr
    assert re.search(r"^\+\s+http_port 8082$", result.stdout, re.M)  # the plan was shown first
    assert snapshot() == before
    journal = Path(inv.env["INVOKE_BLUMEOPS_STATE_DIR"])
    assert any(journal.rglob("*")), "the refused apply is journaled"


def test_unreachable_host_fails_preflight_before_any_play(
    sshd_host: SshdHost, tmp_path: Path, isolated_env: Path
) -> None:
    port = unused_port()
    inv = make_inventory(tmp_path, sshd_host, isolated_env, hosts={"indri": {"ansible_port": port}})
    before = snapshot()
    result = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"Preflight failed: host indri (root@127.0.0.1:{port}) is unreachable over SSH")
    assert "PLAY [" not in result.stdout
    assert "TASK [" not in result.stdout
    assert snapshot() == before


def test_mise_provision_indri_passes_extra_arguments(provisioned: tuple[HostsInventory, Any], tmp_path: Path) -> None:
    """`mise run provision-indri -- --tags caddy --yes` is `inv hosts.provision --host=indri --tags caddy --yes`."""
    inv, _first = provisioned
    env = mise_environ(inv.env, tmp_path)
    inv.set_host_var("caddy_http_port", 8083)
    inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9102")
    try:
        result = run_mise("run", "provision-indri", "--", "--tags", "caddy", "--yes", "--allow-dirty", env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "Provisioned indri." in result.stdout
        assert "http_port 8083" in CADDYFILE.read_text()
        assert "0.0.0.0:9100" in NODE_ARGS.read_text()  # --tags caddy reached ansible: node_exporter untouched
    finally:
        inv.set_host_var("caddy_http_port", 80)
        inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9100")
        restore = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
        assert restore.returncode == 0, restore.stderr
