"""End to end: the shipped indri playbook over real SSH to a fresh disposable host (see conftest.py).

The host starts as a stock machine for the roles (this machine's packages, no borgmatic, nothing
under /etc/borgmatic) and is provisioned with the roles' defaults: the inventory says only how the
host is reached, BORG_PASSPHRASE is the only setting from the environment. No init system there: the
roles' service manager resolves to "none", so services are not started; each config is checked by
its service's own validator on the host (caddy validate, borgmatic config validate, node_exporter's
flag parser), here and inside the roles before files are put in place.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, mise_environ, run_inv, run_mise
from tests.hosts.conftest import (
    TEST_PASSPHRASE,
    HostsInventory,
    Provisioned,
    SshdHost,
    disposable_host,
    make_inventory,
)
from tests.hosts.sshd import PrivateSshd, unused_port

pytestmark = pytest.mark.slow

CADDYFILE = "/etc/caddy/Caddyfile"
BORGMATIC_DIR = "/etc/borgmatic"
NODE_ARGS = "/etc/default/prometheus-node-exporter"
MANAGED = "Managed by Ansible from the blumeops repo"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def snapshot(host: PrivateSshd) -> dict[str, str]:
    """The managed files on the test host."""
    paths = (CADDYFILE, f"{BORGMATIC_DIR}/config.yaml", f"{BORGMATIC_DIR}/passphrase", NODE_ARGS)
    return {path: digest(host.path(path)) for path in paths}


def preview_json(inv: HostsInventory, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_inv("hosts.preview", "--host=indri", "--json", *args, env=inv.env)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def changes(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for layer in document["layers"] for t in layer["targets"] for c in t["changes"]]


def apply_and_count(inv: HostsInventory, results: Path) -> dict[str, int]:
    """A real apply with plain ansible-playbook (not check mode); its recap through the results callback
    (the package's plugin, enabled the way the tasks enable it)."""
    from blumeops_tasks.hosts.project import CALLBACK, plugin_dir

    env = {
        **inv.env,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(plugin_dir("callback")),
        "ANSIBLE_CALLBACKS_ENABLED": CALLBACK,
        "BLUMEOPS_ANSIBLE_RESULTS": str(results),
    }
    bare = subprocess.run(
        ["ansible-playbook", "-i", str(inv.path), "playbooks/indri.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bare.returncode == 0, bare.stdout[-2000:]
    stats: dict[str, int] = json.loads(results.read_text())["stats"]["indri"]
    return stats


def test_provision_end_to_end(provisioned: Provisioned) -> None:
    result, host = provisioned.first, provisioned.host.sshd
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Provisioned indri." in result.stdout
    assert "PLAY RECAP" in result.stdout  # ansible's own human output is streamed as it is
    # Every managed file is in place on the host, headed with ansible_managed.
    caddyfile = host.path(CADDYFILE).read_text()
    assert MANAGED in caddyfile
    assert "reverse_proxy 127.0.0.1:3000" in caddyfile
    assert "grafana.ops.eblu.me {" in caddyfile
    assert 'ARGS="--web.listen-address=0.0.0.0:9100"' in host.path(NODE_ARGS).read_text()
    assert MANAGED in host.path(f"{BORGMATIC_DIR}/config.yaml").read_text()
    passphrase = host.path(f"{BORGMATIC_DIR}/passphrase")
    assert passphrase.read_text() == TEST_PASSPHRASE + "\n"
    assert oct(passphrase.stat().st_mode & 0o777) == "0o600"
    assert TEST_PASSPHRASE not in result.stdout + result.stderr
    # The summary table names the host and its recap.
    assert "indri" in result.stdout


def test_borgmatic_default_install_is_its_own_virtualenv_linked_into_usr_local_bin(provisioned: Provisioned) -> None:
    """The role's defaults on a stock Debian host: a virtualenv (PEP 668 leaves the system Python alone)."""
    host = provisioned.host.sshd
    assert provisioned.first.returncode == 0, provisioned.first.stdout[-3000:]
    link = host.path("/usr/local/bin/borgmatic")
    assert link.is_symlink()
    assert str(link.readlink()) == "/opt/borgmatic/bin/borgmatic"
    assert host.path("/opt/borgmatic/pyvenv.cfg").is_file()
    version = host.run("borgmatic", "--version")
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version.stdout.strip()), version.stdout
    # The system Python did not get borgmatic (no pip install into an externally-managed Python).
    system = host.run("/usr/bin/python3", "-c", "import borgmatic")
    assert system.returncode != 0


def test_services_own_validators_accept_the_configs_on_the_host(provisioned: Provisioned) -> None:
    """No init system on the test host: the services' own validators, run there, accept the configs."""
    host = provisioned.host.sshd
    assert provisioned.first.returncode == 0, provisioned.first.stdout[-3000:]
    checked = host.run("caddy", "validate", "--adapter", "caddyfile", "--config", CADDYFILE)
    assert checked.returncode == 0, checked.stderr
    checked = host.run("borgmatic", "config", "validate", "--config", f"{BORGMATIC_DIR}/config.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = host.run("sh", "-c", f". {NODE_ARGS} && exec prometheus-node-exporter $ARGS --version")
    assert checked.returncode == 0, checked.stderr


def test_a_host_without_the_virtualenv_packages_gets_them_from_apt(
    tmp_path_factory: pytest.TempPathFactory, isolated_env: Path, runner_before: dict[str, object]
) -> None:
    """A stock host may lack python3-venv/python3-packaging and have no package lists: the role fetches both."""
    tmp_path = tmp_path_factory.mktemp("apt")  # short: ssh's ControlPath must fit in a socket address
    with disposable_host(tmp_path / "host") as host:
        stock = "python3-venv python3-packaging"
        prepared = host.sshd.run(
            "sh",
            "-c",
            f"dpkg --remove --force-depends {stock} && rm -rf /var/lib/apt/lists/* && "
            "touch -d '2 days ago' /var/lib/apt/lists && rm -f /var/lib/apt/periodic/update-success-stamp",
        )
        assert prepared.returncode == 0, prepared.stdout + prepared.stderr
        inv = make_inventory(tmp_path, host, isolated_env)
        stats = apply_and_count(inv, tmp_path / "results.json")
        assert stats["failures"] == 0, stats
        assert stats["changed"] > 0, stats
        installed = host.sshd.run("dpkg-query", "-W", "-f", "${db:Status-Status}\\n", *stock.split())
        assert installed.stdout.split() == ["installed", "installed"], installed.stdout + installed.stderr
        assert host.sshd.run("borgmatic", "--version").returncode == 0


def test_second_run_changes_nothing(provisioned: Provisioned, tmp_path: Path) -> None:
    inv = provisioned.inventory
    again = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
    assert again.returncode == 0, again.stderr
    assert "Nothing to change: indri already in line with the repo." in again.stdout, again.stdout[-6000:]
    # The real apply (not check mode) through the results callback: changed=0.
    stats = apply_and_count(inv, tmp_path / "results.json")
    assert stats["changed"] == 0, stats
    assert stats["failures"] == 0, stats
    assert stats["ok"] > 0, stats


def test_changed_variable_shows_as_diff_of_the_right_file(provisioned: Provisioned) -> None:
    inv, host = provisioned.inventory, provisioned.host.sshd
    before = snapshot(host)
    inv.set_host_var("caddy_admin_address", "localhost:2020")
    try:
        code, document = preview_json(inv)
    finally:
        inv.set_host_var("caddy_admin_address", "localhost:2019")
    assert code == 2
    found = changes(document)
    assert [c["detail"] for c in found] == [CADDYFILE], found
    assert found[0]["action"] == "update"
    assert "-\tadmin localhost:2019" in found[0]["diff"]
    assert "+\tadmin localhost:2020" in found[0]["diff"]
    assert document["layers"][0]["targets"][0]["target"] == "indri"
    assert snapshot(host) == before  # the preview left the host untouched


def test_no_changes_preview_exits_zero(provisioned: Provisioned) -> None:
    code, document = preview_json(provisioned.inventory)
    assert code == 0, document
    assert changes(document) == []


def test_tags_caddy_runs_only_caddy(provisioned: Provisioned) -> None:
    inv, host = provisioned.inventory, provisioned.host.sshd
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
        assert "http_port 8081" in host.path(CADDYFILE).read_text()
        assert "0.0.0.0:9100" in host.path(NODE_ARGS).read_text()  # node_exporter's change was not applied
    finally:
        inv.set_host_var("caddy_http_port", 80)
        inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9100")
        restore = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
        assert restore.returncode == 0, restore.stderr


def test_failing_task_exits_with_ansible_code_naming_the_task(provisioned: Provisioned) -> None:
    """Check mode cannot run caddy validate; the real apply does, and the bad Caddyfile never lands."""
    inv, host = provisioned.inventory, provisioned.host.sshd
    before = snapshot(host)
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
    assert snapshot(host) == before


def test_failing_assert_fails_preview_naming_task_and_host(provisioned: Provisioned) -> None:
    inv = provisioned.inventory
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


def test_packaged_borgmatic_too_old_for_the_role_fails_before_installing(provisioned: Provisioned) -> None:
    """install_method apt where the distribution's borgmatic predates the role's configuration (Debian 12)."""
    inv, host = provisioned.inventory, provisioned.host.sshd
    packaged = host.run("sh", "-c", "apt-cache policy borgmatic | sed -n 's/^ *Candidate: *\\([0-9]\\)/\\1/p'")
    candidate = packaged.stdout.strip()
    assert candidate == "" or candidate.startswith(("1.5.", "1.6.", "1.7.")), f"needs Debian 12's apt: {candidate}"
    inv.set_host_var("borgmatic_install_method", "apt")
    try:
        result = run_inv("hosts.preview", "--host=indri", env=inv.env)
    finally:
        data = yaml.safe_load(inv.host_vars.read_text())
        del data["borgmatic_install_method"]
        inv.host_vars.write_text(yaml.safe_dump(data, sort_keys=False))
    assert result.returncode == 1, result.stdout[-2000:]
    assert "task 'borgmatic : Borgmatic | assert the packaged borgmatic is new enough' failed on host indri" in (
        result.stderr
    )
    upstream = candidate.split(":")[-1].rsplit("-", 1)[0]  # Debian's 1.7.7-1 is borgmatic 1.7.7
    assert f"apt offers borgmatic {upstream or '(none)'} and this role's configuration needs 1.8.0" in " ".join(
        (result.stdout + result.stderr).split()
    )
    assert host.run("dpkg-query", "-W", "borgmatic").returncode != 0  # nothing was installed


def test_provision_without_yes_and_terminal_refuses(provisioned: Provisioned) -> None:
    inv, host = provisioned.inventory, provisioned.host.sshd
    before = snapshot(host)
    inv.set_host_var("caddy_http_port", 8082)
    try:
        result = run_inv("hosts.provision", "--host=indri", "--allow-dirty", env=inv.env)
    finally:
        inv.set_host_var("caddy_http_port", 80)
    assert result.returncode == 1
    assert "Refusing to provision indri without confirmation" in result.stderr
    assert re.search(r"^\+\s+http_port 8082$", result.stdout, re.M)  # the plan was shown first
    assert snapshot(host) == before
    journal = Path(inv.env["INVOKE_BLUMEOPS_STATE_DIR"])
    assert any(journal.rglob("*")), "the refused apply is journaled"


def test_unreachable_host_fails_preflight_before_any_play(
    sshd_host: SshdHost, tmp_path: Path, isolated_env: Path
) -> None:
    port = unused_port()
    inv = make_inventory(tmp_path, sshd_host, isolated_env, hosts={"indri": {"ansible_port": port}})
    before = snapshot(sshd_host.sshd)
    result = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"Preflight failed: host indri (root@127.0.0.1:{port}) is unreachable over SSH")
    assert "PLAY [" not in result.stdout
    assert "TASK [" not in result.stdout
    assert snapshot(sshd_host.sshd) == before


def test_mise_provision_indri_passes_extra_arguments(provisioned: Provisioned, tmp_path: Path) -> None:
    """`mise run provision-indri -- --tags caddy --yes` is `inv hosts.provision --host=indri --tags caddy --yes`."""
    inv, host = provisioned.inventory, provisioned.host.sshd
    env = mise_environ(inv.env, tmp_path)
    inv.set_host_var("caddy_http_port", 8083)
    inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9102")
    try:
        result = run_mise("run", "provision-indri", "--", "--tags", "caddy", "--yes", "--allow-dirty", env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert "Provisioned indri." in result.stdout
        assert "http_port 8083" in host.path(CADDYFILE).read_text()
        # --tags caddy reached ansible: node_exporter untouched
        assert "0.0.0.0:9100" in host.path(NODE_ARGS).read_text()
    finally:
        inv.set_host_var("caddy_http_port", 80)
        inv.set_host_var("node_exporter_listen_address", "0.0.0.0:9100")
        restore = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=inv.env)
        assert restore.returncode == 0, restore.stderr
