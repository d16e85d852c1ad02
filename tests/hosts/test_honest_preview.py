"""Previews that show what will happen, and no secret on the way (issue 11, hosts parts).

Real parts: ansible-playbook over real SSH to the disposable test host (tests/hosts/sshd.py), a real
Ansible Vault value (ansible-vault with a password file made here), real ansible-inventory for the
duplicate hosts. What is pinned: exit codes, the plan's action and detail, where the secret is not.
"""

from __future__ import annotations

import base64
import json
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, clean_environ, require_tool, run_inv
from tests.hosts.conftest import HostsInventory, Provisioned, SshdHost, make_inventory

VAULT_VALUE = "vaulted-Zq7-honest-preview-secret"  # an inline `!vault` host_var
VAULT_B64 = base64.b64encode(VAULT_VALUE.encode()).decode()
FILE_VALUE = "whole-file-vault-Pq3-vars-file"  # in a vault-encrypted vars_files of the playbook
GROUP_VALUE = "whole-file-vault-Gw8-group-vars"  # in a vault-encrypted group_vars file
SECRET_FILE = "/etc/blumeops-honest/token.conf"
PLAIN_FILE = "/etc/blumeops-honest/plain.conf"
UNPREVIEWABLE = "Work | a command check mode cannot preview"
FORCED = "Work | a command that runs in check mode too"
NOT_PREVIEWABLE = "will run, not previewable"
SECRET = "changed (secret)"

PLAYBOOK = f"""\
- name: Honest preview
  hosts: indri
  gather_facts: false
  vars_files:
    - secrets.yml
  tasks:
    - name: Files | their directory
      ansible.builtin.file:
        path: /etc/blumeops-honest
        state: directory
        mode: "0755"
    - name: Secret | a file made from a vault value
      ansible.builtin.copy:
        content: |
          token={{{{ honest_token }}}}
          basic={{{{ honest_token | b64encode }}}}
          file={{{{ honest_file_secret }}}}
          group={{{{ honest_group_secret }}}}
        dest: {SECRET_FILE}
        mode: "0600"
    - name: Plain | a file with nothing secret
      ansible.builtin.copy:
        content: "plain=1\\n"
        dest: {PLAIN_FILE}
        mode: "0644"
    - name: Secret | a message naming the vault value
      ansible.builtin.debug:
        msg: "the token is {{{{ honest_token }}}}"
    - name: {UNPREVIEWABLE}
      ansible.builtin.command: /bin/true
    - name: {FORCED}
      ansible.builtin.command: /bin/true
      check_mode: false
"""


def changes(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The plan's changes by task name (without the role prefix)."""
    found = [c for layer in document["layers"] for t in layer["targets"] for c in t["changes"]]
    return {c["resource"].split(" : ")[-1]: c for c in found}


def assert_no_vault_value(text: str, where: str) -> None:
    for value in (VAULT_VALUE, VAULT_B64, FILE_VALUE, GROUP_VALUE):
        assert value not in text, f"a vault value ({value[:12]}...) is in {where}"


@dataclass
class VaultProject:
    inventory: HostsInventory
    host: SshdHost
    state: Path


@pytest.fixture(scope="module")
def vault_project(tmp_path_factory: pytest.TempPathFactory, sshd_host: SshdHost) -> VaultProject:
    """indri (the shared test host) with a vault-encrypted host_var feeding a file, and a playbook
    with tasks check mode cannot preview. The vault password file is made here."""
    require_tool("ansible-vault")
    root = tmp_path_factory.mktemp("vault")
    home = root / "home"
    home.mkdir()
    inv = make_inventory(root, sshd_host, home)
    password = root / "vault-password"
    password.write_text("honest-preview-vault-password\n")
    encrypted = subprocess.run(
        ["ansible-vault", "encrypt_string", "--vault-password-file", str(password), "--stdin-name", "honest_token"],
        input=VAULT_VALUE,
        capture_output=True,
        text=True,
        check=True,
        env=clean_environ(home),
    )
    assert "!vault" in encrypted.stdout
    with inv.host_vars.open("a", encoding="utf-8") as handle:
        handle.write("\n" + encrypted.stdout)
    group_vars = inv.path / "group_vars" / "linux.yml"
    group_vars.write_text(group_vars.read_text() + f"honest_group_secret: {GROUP_VALUE}\n")
    playbooks = root / "playbooks"
    playbooks.mkdir()
    (playbooks / "indri.yml").write_text(PLAYBOOK)
    (playbooks / "secrets.yml").write_text(f"honest_file_secret: {FILE_VALUE}\n")
    for whole in (group_vars, playbooks / "secrets.yml"):
        subprocess.run(
            ["ansible-vault", "encrypt", "--vault-password-file", str(password), str(whole)],
            capture_output=True,
            check=True,
            env=clean_environ(home),
        )
    inv.env.update(
        {
            "ANSIBLE_VAULT_PASSWORD_FILE": str(password),
            "INVOKE_BLUMEOPS_HOSTS_PLAYBOOKS": str(playbooks),
        }
    )
    return VaultProject(inv, sshd_host, Path(inv.env["INVOKE_BLUMEOPS_STATE_DIR"]))


def test_preview_lists_unpreviewable_tasks_and_secret_files_without_the_vault_value(
    vault_project: VaultProject,
) -> None:
    result = run_inv("hosts.preview", "--host=indri", "--json", env=vault_project.inventory.env)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert_no_vault_value(result.stdout, "the preview JSON")
    assert_no_vault_value(result.stderr, "stderr")
    found = changes(json.loads(result.stdout))
    # A command check mode skips is listed as work that will run, not hidden.
    assert found[UNPREVIEWABLE]["action"] == "run"
    assert found[UNPREVIEWABLE]["detail"] == NOT_PREVIEWABLE
    # check_mode: false ran for real in the preview: it is what it is, not "not previewable".
    assert found[FORCED]["action"] == "run"
    assert found[FORCED]["detail"] != NOT_PREVIEWABLE
    # The file made from the vault value: changed, secret, no diff.
    secret = found["Secret | a file made from a vault value"]
    assert secret["action"] == "update"
    assert SECRET in secret["detail"]
    assert SECRET_FILE in secret["detail"]
    assert secret["diff"] == ""
    # A file with nothing secret keeps its diff.
    plain = found["Plain | a file with nothing secret"]
    assert plain["action"] == "update"
    assert "+plain=1" in plain["diff"]
    assert not vault_project.host.sshd.path(SECRET_FILE).exists()  # a preview changes nothing


def test_the_results_callback_never_writes_a_vault_value(vault_project: VaultProject, tmp_path: Path) -> None:
    """The callback's own JSON (read by the tasks): given the vault files' paths, as the tasks give
    them, it decrypts them with the playbook's loader and keeps their values out of the file."""
    from blumeops_tasks.hosts.project import plugin_dir

    inv = vault_project.inventory
    playbooks = Path(inv.env["INVOKE_BLUMEOPS_HOSTS_PLAYBOOKS"])
    vault_files = [inv.host_vars, inv.path / "group_vars" / "linux.yml", playbooks / "secrets.yml"]
    results = tmp_path / "results.json"
    env = {
        **inv.env,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(plugin_dir("callback")),
        "ANSIBLE_CALLBACKS_ENABLED": "blumeops_results",
        "BLUMEOPS_ANSIBLE_RESULTS": str(results),
        "BLUMEOPS_VAULT_FILES": ":".join(str(f) for f in vault_files),
    }
    run = subprocess.run(
        ["ansible-playbook", "-i", str(inv.path), str(playbooks / "indri.yml"), "--check", "--diff"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert VAULT_VALUE in run.stdout  # ansible's own output, before blumeops redacts it
    written = results.read_text()
    assert_no_vault_value(written, "the callback's results file")
    records = {r["task"]: r for r in json.loads(written)["tasks"]}
    assert records["Secret | a file made from a vault value"]["secret"] is True
    assert records["Secret | a message naming the vault value"]["msg"] == "the token is ***"


def test_vault_value_reaches_the_host_but_never_the_screen_or_the_journal(vault_project: VaultProject) -> None:
    env = vault_project.inventory.env
    preview = run_inv("hosts.preview", "--host=indri", env=env)
    assert preview.returncode == 2, preview.stdout[-3000:] + preview.stderr[-3000:]
    provision = run_inv("hosts.provision", "--host=indri", "--yes", "--allow-dirty", env=env)
    assert provision.returncode == 0, provision.stdout[-3000:] + provision.stderr[-3000:]
    assert "TASK [Secret | a message naming the vault value]" in provision.stdout  # ansible's output was shown
    # The values were used: the host's file holds them.
    written_there = vault_project.host.sshd.path(SECRET_FILE).read_text()
    assert all(value in written_there for value in (VAULT_VALUE, FILE_VALUE, GROUP_VALUE)), written_there
    shown = run_inv("hosts.run", "--host=indri", f"--cmd=cat {SECRET_FILE}", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "token=***" in shown.stdout
    for name, text in (
        ("the preview's stdout", preview.stdout),
        ("the preview's stderr", preview.stderr),
        ("the provision's stdout", provision.stdout),
        ("the provision's stderr", provision.stderr),
        ("hosts.run's output", shown.stdout + shown.stderr),
    ):
        assert_no_vault_value(text, name)
    assert NOT_PREVIEWABLE in preview.stdout
    assert SECRET in preview.stdout
    written = [path for path in vault_project.state.rglob("*") if path.is_file()]
    assert any("journal" in path.name for path in written), written
    for path in written:
        assert_no_vault_value(path.read_text(encoding="utf-8", errors="replace"), str(path))
    # In line now, except the command check mode cannot preview: never "Nothing to change".
    again = run_inv("hosts.preview", "--host=indri", "--json", env=env)
    assert again.returncode == 2, again.stdout[-3000:]
    pending = changes(json.loads(again.stdout))
    assert pending[UNPREVIEWABLE]["detail"] == NOT_PREVIEWABLE
    assert "Secret | a file made from a vault value" not in pending
    assert_no_vault_value(again.stdout, "the second preview")


def test_a_mistyped_borg_passphrase_shows_as_a_secret_change(provisioned: Provisioned) -> None:
    """The passphrase task hides its diff (no_log, diff: false); a different BORG_PASSPHRASE would
    replace the host's passphrase file, so the preview says so, without the value."""
    inv = provisioned.inventory
    assert provisioned.first.returncode == 0, provisioned.first.stdout[-3000:]
    mistyped = "borg-mistyped-passphrase-7731"
    result = run_inv("hosts.preview", "--host=indri", "--json", env={**inv.env, "BORG_PASSPHRASE": mistyped})
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert mistyped not in result.stdout + result.stderr
    found = changes(json.loads(result.stdout))
    change = found["Borgmatic | repository passphrase (never logged, never diffed)"]
    assert change["action"] == "update"
    assert SECRET in change["detail"]
    assert "/etc/borgmatic/passphrase" in change["detail"]
    assert change["diff"] == ""
    # With the passphrase the host has, the same task is not a change.
    same = run_inv("hosts.preview", "--host=indri", "--json", env=inv.env)
    assert same.returncode == 0, same.stdout[-3000:]


# -- a host defined twice --------------------------------------------------------------------------


def inventory_check(tmp_path: Path, inventory: Path) -> dict[str, Any]:
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_HOSTS_INVENTORY": str(inventory)})
    result = run_inv("check", "--layer=hosts", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr  # a warning, never a failure
    checks: dict[str, dict[str, Any]] = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return checks["inventory parses"]


def copied_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    for part in ("group_vars", "host_vars"):
        (inventory / part).mkdir(parents=True)
        for path in (REPO / "inventory" / part).iterdir():
            (inventory / part / path.name).write_text(path.read_text())
    return inventory


def test_a_host_twice_in_one_inventory_file_is_a_warning_naming_both_lines(tmp_path: Path) -> None:
    inventory = copied_inventory(tmp_path)
    (inventory / "hosts.yml").write_text(
        textwrap.dedent(
            """\
            all:
              children:
                macos:
                  hosts:
                    indri:
                      ansible_host: indri
                    gilbert:
                      ansible_host: gilbert
                    indri:
                      ansible_host: indri.example
            """
        )
    )
    row = inventory_check(tmp_path, inventory)
    assert row["status"] == "warn", row
    assert "'indri' is defined twice" in row["detail"]
    assert "hosts.yml" in row["detail"]
    assert "line 5 and line 9" in row["detail"]


def test_a_host_in_two_inventory_files_with_different_vars_is_a_warning_naming_both_files(tmp_path: Path) -> None:
    inventory = copied_inventory(tmp_path)
    (inventory / "hosts.yml").write_text((REPO / "inventory" / "hosts.yml").read_text())
    lab = {"all": {"children": {"linux": {"hosts": {"indri": {"ansible_host": "lab-indri"}}}}}}
    (inventory / "lab.yml").write_text(yaml.safe_dump(lab))
    row = inventory_check(tmp_path, inventory)
    assert row["status"] == "warn", row
    assert "host indri is defined in" in row["detail"]
    assert "hosts.yml" in row["detail"]
    assert "lab.yml" in row["detail"]
    assert "ansible_host" in row["detail"]
    assert "lab-indri" not in row["detail"]  # variable names only, never values


def test_the_repos_own_inventory_defines_each_host_once(tmp_path: Path) -> None:
    inventory = copied_inventory(tmp_path)
    (inventory / "hosts.yml").write_text((REPO / "inventory" / "hosts.yml").read_text())
    row = inventory_check(tmp_path, inventory)
    assert row["status"] == "ok", row


# -- the pure parts, on captured shapes ----------------------------------------------------------


def record(**fields: Any) -> dict[str, Any]:
    base = {"task": "role : Task", "host": "indri", "status": "changed", "action": "ansible.builtin.copy"}
    return {**base, **fields}


def test_plan_lists_a_skipped_unpreviewable_task_as_run_and_not_a_conditional_skip() -> None:
    from blumeops_tasks.hosts.callback_parse import to_plan

    doc = {
        "complete": True,
        "stats": {"indri": {}},
        "tasks": [
            record(task="cmd", status="skipped", action="ansible.builtin.command", not_previewable=True),
            record(task="when false", status="skipped", action="ansible.builtin.command"),
        ],
    }
    plan = to_plan(doc)
    assert [(c.resource, c.action, c.detail) for c in plan.changes] == [("cmd", "run", NOT_PREVIEWABLE)]


def test_a_change_ansible_hides_or_whose_diff_holds_a_secret_is_a_secret_update(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from blumeops_tasks.hosts.callback_parse import change_for

    hidden = change_for(record(secret=True, path="/etc/borgmatic/passphrase"))
    assert (hidden.action, hidden.diff) == ("update", "")
    assert hidden.detail == f"/etc/borgmatic/passphrase; {SECRET}"
    monkeypatch.setenv("HONEST_TEST_TOKEN", "a-token-in-a-diff-123")
    leaked = change_for(record(path="/etc/x.conf", diff="+token=a-token-in-a-diff-123\n"))
    assert (leaked.action, leaked.diff, leaked.detail) == ("update", "", f"/etc/x.conf; {SECRET}")
    plain = change_for(record(path="/etc/y.conf", diff="+plain=1\n"))
    assert (plain.action, plain.diff, plain.detail) == ("update", "+plain=1\n", "/etc/y.conf")


def test_added_secret_values_are_masked_in_every_form() -> None:
    from blumeops_tasks import redaction

    value = "added-value-for-redaction-42"
    redaction.add_secret_values([value])
    encoded = base64.b64encode(value.encode()).decode()
    assert redaction.redact(f"a {value} b {encoded}") == "a *** b ***"
    assert redaction.contains_secret(encoded)


def test_ansibles_duplicate_key_warning_is_read_with_both_lines(tmp_path: Path) -> None:
    from blumeops_tasks.hosts.duplicates import duplicate_keys, first_definition, with_first_lines

    hosts = tmp_path / "hosts.yml"
    hosts.write_text("all:\n  hosts:\n    indri:\n      a: 1\n    gilbert: {}\n    indri:\n      a: 2\n")
    stderr = (
        "[WARNING]: Found duplicate mapping key 'indri'.\n"
        f"Origin: {hosts}:6:5\n\n5         gilbert: {{}}\n6     indri:\n      ^ column 5\n\n"
        "Using last defined value only.\n"
    )
    [found] = with_first_lines(duplicate_keys(stderr))
    assert (found.key, found.line, found.first_line) == ("indri", 6, 3)
    assert "line 3 and line 6" in found.sentence()
    assert first_definition("a:\n  x: 1\nb:\n  x: 2\n", "x", 4, 3) == 0  # another mapping's key is not it


def test_conflicting_variables_across_sources_name_both_files_and_the_winner() -> None:
    from blumeops_tasks.hosts.duplicates import conflicts, sources
    from blumeops_tasks.hosts.inventory import Inventory

    verbose = (
        "Parsed /inv/a.yml inventory source with yaml plugin\nParsed /inv/b.yml inventory source with yaml plugin\n"
    )
    assert sources(verbose) == ["/inv/a.yml", "/inv/b.yml"]
    a = Inventory({"indri": {"ansible_host": "10.0.0.1", "x": 1}, "sifaka": {}})
    b = Inventory({"indri": {"ansible_host": "10.0.0.9", "x": 1}})
    merged = Inventory({"indri": {"ansible_host": "10.0.0.9", "x": 1}, "sifaka": {}})
    [sentence] = conflicts({"/inv/a.yml": a, "/inv/b.yml": b}, merged)
    assert sentence.startswith("host indri is defined in /inv/a.yml and /inv/b.yml with different ansible_host")
    assert "uses /inv/b.yml's" in sentence
    assert "10.0.0" not in sentence
    same = Inventory({"indri": {"ansible_host": "10.0.0.9", "x": 1}})
    assert conflicts({"/inv/a.yml": same, "/inv/b.yml": b}, merged) == []
