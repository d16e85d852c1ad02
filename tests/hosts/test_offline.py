"""Offline tests of the hosts layer: roles, parsing, patterns, command lines. No SSH here."""

from __future__ import annotations

import json
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from invoke.context import MockContext
from invoke.runners import Result

from blumeops_tasks.hosts import callback_parse, render
from blumeops_tasks.hosts import status as probing
from blumeops_tasks.hosts.inventory import (
    Inventory,
    ProjectError,
    SshTarget,
    play_patterns,
    play_roles,
    playbook_for,
    ssh_command,
)
from blumeops_tasks.hosts.project import Project, playbook_command
from tests.conftest import REPO, clean_environ, require_tool, run_inv

DATA = Path(__file__).parent / "data"
ROLES = REPO / "roles"
ROLE_NAMES = ["borgmatic", "caddy", "node_exporter"]
SAMPLE = {
    "caddy_sites": [
        {"name": "a", "address": "a.example", "backends": ["127.0.0.1:1"], "tls": "internal", "headers": {"X-A": "b"}}
    ],
    "borgmatic_source_directories": ["/srv"],
    "borgmatic_repositories": [{"path": "/backup/repo", "label": "local"}],
}


# -- roles -----------------------------------------------------------------------------------------


def test_roles_present() -> None:
    assert render.roles(ROLES) == ROLE_NAMES


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_match_defaults(role: str) -> None:
    assert render.spec_mismatches(ROLES / role) == []


def test_argument_spec_drift_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "caddy"
    shutil.copytree(ROLES / "caddy", copy)
    defaults = yaml.safe_load((copy / "defaults/main.yml").read_text())
    defaults["caddy_http_port"] = 8080
    defaults["caddy_new_option"] = "x"
    (copy / "defaults/main.yml").write_text(yaml.safe_dump(defaults))
    problems = render.spec_mismatches(copy)
    assert "caddy: caddy_http_port default differs between defaults and argument_specs" in problems
    assert "caddy: caddy_new_option is in defaults but not in argument_specs" in problems


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize("platform", ["debian", "macos"])
def test_templates_render_with_header(role: str, platform: str) -> None:
    assert render.template_problems(ROLES / role, platform, SAMPLE) == []


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_launchd_plists_are_valid_property_lists(role: str) -> None:
    plists = [r for r in render.render_role(ROLES / role, "macos", SAMPLE) if r.template.endswith(".plist.j2")]
    assert plists, f"{role} has no launchd plist"
    for item in plists:
        data = plistlib.loads(item.text.encode())
        assert data["Label"].startswith("me.eblu.")
        assert data["ProgramArguments"][0].startswith("/opt/homebrew/bin/")


def test_broken_plist_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "caddy"
    shutil.copytree(ROLES / "caddy", copy)
    plist = copy / "templates/caddy.plist.j2"
    plist.write_text(plist.read_text().replace("</dict>\n</plist>", "</plist>"))
    problems = render.template_problems(copy, "macos")
    assert any("caddy.plist.j2 (macos): not a valid property list" in p for p in problems), problems


def test_rendered_caddyfile_passes_caddy_validate(tmp_path: Path) -> None:
    caddy = require_tool("caddy")
    caddyfile = next(r for r in render.render_role(ROLES / "caddy", "debian", SAMPLE) if r.template == "Caddyfile.j2")
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile.text)
    result = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(path)],
        capture_output=True,
        text=True,
        env=clean_environ(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_rendered_borgmatic_config_passes_borgmatic(tmp_path: Path) -> None:
    borgmatic = require_tool("borgmatic")
    config = next(
        r for r in render.render_role(ROLES / "borgmatic", "debian", SAMPLE) if r.template == "config.yaml.j2"
    )
    path = tmp_path / "config.yaml"
    path.write_text(config.text)
    result = subprocess.run(
        [borgmatic, "config", "validate", "--config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    lint = require_tool("ansible-lint")
    env = clean_environ(tmp_path, {"ANSIBLE_HOME": str(tmp_path / "ansible")})
    result = subprocess.run(
        [lint, "--offline", "--profile", "production", "playbooks/", "roles/"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_lint_config_has_no_unexplained_skips() -> None:
    config = yaml.safe_load((REPO / ".ansible-lint").read_text())
    assert config["profile"] == "production"
    assert not config.get("skip_list")
    assert not config.get("warn_list")


def test_inv_check_hosts_passes(tmp_path: Path) -> None:
    result = run_inv("check", "--layer=hosts", "--json", env=clean_environ(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    names = {c["name"]: c["status"] for c in json.loads(result.stdout)["checks"]}
    assert names["inventory parses"] == "ok"
    assert names["syntax indri.yml"] == "ok"
    assert names["argument specs = defaults"] == "ok"
    assert names["templates render"] == "ok"


def test_inv_check_fails_on_a_broken_playbook(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    (playbooks / "indri.yml").write_text("- hosts: indri\n  roles:\n    - role: no_such_role\n")
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_HOSTS_PLAYBOOKS": str(playbooks)})
    result = run_inv("check", "--layer=hosts", "--json", env=env)
    assert result.returncode == 1
    failed = [c for c in json.loads(result.stdout)["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["syntax indri.yml", "syntax site.yml"]
    assert "no_such_role" in failed[0]["detail"]


# -- callback JSON -> plan -------------------------------------------------------------------------


def test_check_run_becomes_a_plan() -> None:
    doc = json.loads((DATA / "check_changes.json").read_text())
    plan = callback_parse.to_plan(doc)
    assert plan.error is None
    assert [t.target for t in plan.targets] == ["indri"]
    caddy, passphrase = plan.targets[0].changes
    assert caddy.action == "update"
    assert caddy.detail == "/etc/caddy/Caddyfile"
    assert "-\tadmin localhost:2019" in caddy.diff
    assert "+\tadmin localhost:2030" in caddy.diff
    assert passphrase.action == "run"
    assert passphrase.diff == ""
    assert callback_parse.summary_rows(doc)[0][-1] == "changed"


def test_failed_task_becomes_an_error_naming_task_and_host() -> None:
    doc = json.loads((DATA / "failed_task.json").read_text())
    plan = callback_parse.to_plan(doc)
    assert plan.error is not None
    assert plan.error.startswith(
        "task 'caddy : Caddy | assert every site names an address and at least one backend' failed on host indri"
    )


def test_unreachable_and_ignored_errors() -> None:
    doc = {
        "tasks": [
            {"host": "a", "task": "Gathering Facts", "status": "unreachable", "msg": "ssh: connect refused\nmore"},
            {"host": "b", "task": "x : y", "status": "failed", "ignore_errors": True, "msg": "ignored"},
            {"host": "b", "task": "x : z", "status": "changed", "diff": "", "action": "ansible.builtin.command"},
        ],
        "stats": {"a": {"unreachable": 1}, "b": {"changed": 1, "ignored": 1}},
    }
    plan = callback_parse.to_plan(doc)
    assert plan.error == "host a was unreachable during task 'Gathering Facts': ssh: connect refused"
    assert [(t.target, [c.action for c in t.changes]) for t in plan.targets] == [("a", []), ("b", ["run"])]
    assert [row[-1] for row in callback_parse.summary_rows(doc)] == ["unreachable", "changed"]


def test_missing_results_file_is_an_error(tmp_path: Path) -> None:
    assert callback_parse.load(tmp_path / "absent.json") is None
    assert callback_parse.to_plan(None).error == "ansible-playbook stopped before any play ran (no results written)"


# -- inventory, playbooks, command lines -----------------------------------------------------------


def inventory_fixture() -> Inventory:
    return Inventory.from_list_json(
        {
            "_meta": {
                "hostvars": {
                    "indri": {
                        "ansible_host": "10.0.0.1",
                        "ansible_user": "erich",
                        "ansible_ssh_common_args": "-o UserKnownHostsFile=/k/known",
                    },
                    "gilbert": {},
                    "sifaka": {"ansible_port": 2200},
                }
            },
            "all": {"children": ["ungrouped", "macos", "linux"]},
            "macos": {"hosts": ["indri", "gilbert"]},
            "linux": {"hosts": ["sifaka"]},
        }
    )


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("indri", ["indri"]),
        ("macos", ["indri", "gilbert"]),
        ("all", ["indri", "gilbert", "sifaka"]),
        ("macos:!gilbert", ["indri"]),
        ("all,&linux", ["sifaka"]),
        ("g*", ["gilbert"]),
        ("nosuch", []),
    ],
)
def test_patterns(pattern: str, expected: list[str]) -> None:
    assert inventory_fixture().match(pattern) == expected


def test_targets_respect_limit() -> None:
    inv = inventory_fixture()
    assert inv.targets(["indri", "sifaka"], limit="linux") == ["sifaka"]


def test_ssh_target_and_command() -> None:
    target = inventory_fixture().ssh_target("indri")
    assert target == SshTarget("indri", "10.0.0.1", 22, "erich", "", "-o UserKnownHostsFile=/k/known")
    assert target.known_hosts_file() == "/k/known"
    assert ssh_command(target, "true", 5) == (
        "ssh -o BatchMode=yes -o ConnectTimeout=5 -p 22 -l erich -o UserKnownHostsFile=/k/known 10.0.0.1 true"
    )
    with pytest.raises(ProjectError, match="Host 'nope' is not in the inventory"):
        inventory_fixture().ssh_target("nope")


def test_playbooks_and_roles() -> None:
    assert play_patterns(REPO / "playbooks/indri.yml") == ["indri"]
    assert play_patterns(REPO / "playbooks/site.yml") == ["indri", "sifaka", "gilbert"]
    assert play_roles(REPO / "playbooks/indri.yml") == ["caddy", "node_exporter", "borgmatic"]
    assert play_roles(REPO / "playbooks/indri.yml", tags="caddy") == ["caddy"]
    with pytest.raises(ProjectError, match="no playbook for 'nosuch'"):
        playbook_for(REPO / "playbooks", "nosuch", "site")


def project_fixture() -> Project:
    return Project(
        REPO,
        Path("/inv"),
        REPO / "playbooks",
        REPO / "roles",
        REPO / "ansible.cfg",
        "ansible-playbook",
        "ansible-inventory",
        "site",
        5.0,
    )


def test_command_lines_are_pinned() -> None:
    p = project_fixture()
    book = REPO / "playbooks/indri.yml"
    assert (
        playbook_command(p, book, mode="syntax")
        == f"cd {REPO} && ansible-playbook -i /inv playbooks/indri.yml --syntax-check"
    )
    assert playbook_command(p, book, mode="check", tags="caddy", limit="indri") == (
        f"cd {REPO} && ansible-playbook -i /inv playbooks/indri.yml --check --diff --tags caddy --limit indri"
    )
    c = MockContext(run={f"cd {REPO} && ansible-playbook -i /inv playbooks/indri.yml --syntax-check": Result(exited=0)})
    from blumeops_tasks.hosts.workflow import syntax_error

    assert syntax_error(c, p, book) is None
    failing = MockContext(
        run={
            f"cd {REPO} && ansible-playbook -i /inv playbooks/indri.yml --syntax-check": Result(
                exited=4, stderr="[ERROR]: the role 'x' was not found\n"
            ),
        }
    )
    assert syntax_error(failing, p, book) == "playbooks/indri.yml fails --syntax-check: the role 'x' was not found"


# -- status probes ---------------------------------------------------------------------------------


def test_status_probes_follow_host_vars() -> None:
    probes = probing.probes(
        ROLES,
        ["caddy", "node_exporter", "borgmatic"],
        {"node_exporter_listen_address": "0.0.0.0:9555", "caddy_admin_address": "localhost:2099"},
    )
    assert [(p.name, p.ports, p.files) for p in probes] == [
        ("caddy", ("localhost:2099", "80"), ()),
        ("node_exporter", ("0.0.0.0:9555",), ()),
        ("borgmatic", (), ("/etc/borgmatic/config.yaml",)),
    ]
    output = "process\t0\tup\nport\t0|localhost:2099\tup\nport\t0|80\tdown\nprocess\t1\tup\nport\t1|0.0.0.0:9555\tup\n"
    results = probing.parse(probes, output)
    assert [r.healthy for r in results] == [False, True, False]  # borgmatic's file line is missing: down
    assert probing.address("0.0.0.0:9100") == ("127.0.0.1", 9100)
    assert probing.address("9100") == ("127.0.0.1", 9100)


# -- cache of file-keyed results -------------------------------------------------------------------


def test_fingerprint_follows_files(tmp_path: Path) -> None:
    from blumeops_tasks.hosts import cache

    (tmp_path / "a.yml").write_text("one")
    first = cache.fingerprint([tmp_path])
    assert cache.fingerprint([tmp_path]) == first
    (tmp_path / "a.yml").write_text("two!")
    assert cache.fingerprint([tmp_path]) != first
    assert cache.fingerprint([tmp_path], extra=["--limit x"]) != cache.fingerprint([tmp_path])


def test_cache_keeps_recent_entries_per_kind(tmp_path: Path) -> None:
    """Alternating inputs (two inventories) must not evict each other; old entries are pruned."""
    from blumeops_tasks.hosts import cache

    cache.put(tmp_path, "syntax-indri", "a" * 32, {"passed": True})
    cache.put(tmp_path, "syntax-indri", "b" * 32, {"passed": True})
    cache.put(tmp_path, "syntax-indri-extra", "c" * 32, {"passed": True})
    assert cache.get(tmp_path, "syntax-indri", "a" * 32) == {"passed": True}
    assert cache.get(tmp_path, "syntax-indri", "b" * 32) == {"passed": True}
    for n in range(cache.KEEP + 2):
        cache.put(tmp_path, "syntax-indri", f"{n:032x}", n)
    assert len(list(tmp_path.glob("syntax-indri-" + "?" * 32 + ".json"))) == cache.KEEP
    assert cache.get(tmp_path, "syntax-indri", f"{cache.KEEP + 1:032x}") == cache.KEEP + 1
    assert cache.get(tmp_path, "syntax-indri-extra", "c" * 32) == {"passed": True}


def test_syntax_pass_is_cached_and_failure_is_not(tmp_path: Path) -> None:
    from dataclasses import replace

    from blumeops_tasks.hosts.workflow import syntax_error

    p = replace(project_fixture(), cache_dir=tmp_path / "cache")
    book = REPO / "playbooks/indri.yml"
    command = f"cd {REPO} && ansible-playbook -i /inv playbooks/indri.yml --syntax-check"
    failing = MockContext(run={command: Result(exited=4, stderr="[ERROR]: broken\n")})
    assert syntax_error(failing, p, book) == "playbooks/indri.yml fails --syntax-check: broken"
    with pytest.raises(NotImplementedError):  # a failure was not cached: the check runs again
        syntax_error(MockContext(run={}), p, book)
    assert syntax_error(MockContext(run={command: Result(exited=0)}), p, book) is None
    assert syntax_error(MockContext(run={}), p, book) is None  # the pass was cached: nothing runs


def test_ssh_check_shares_ansibles_control_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from blumeops_tasks.hosts.project import ansible_control_path

    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp"))
    assert ansible_control_path(project_fixture()) == f"{tmp_path / 'cp'}/%C"
    assert (tmp_path / "cp").is_dir()
    target = SshTarget("h", "10.0.0.2", 2222, "root")
    assert ssh_command(target, "true", 3, f"{tmp_path}/cp/%C") == (
        "ssh -o BatchMode=yes -o ConnectTimeout=3 -o ControlMaster=auto -o ControlPersist=120s "
        f"-o ControlPath={tmp_path}/cp/%C -p 2222 -l root 10.0.0.2 true"
    )
    other = tmp_path / "other.cfg"
    other.write_text("[ssh_connection]\ncontrol_path = /elsewhere/%%h\n")
    assert ansible_control_path(replace(project_fixture(), config=other)) == ""


def test_no_matching_host_is_an_error_not_an_empty_plan() -> None:
    doc = {"complete": True, "plays": ["Provision indri"], "tasks": [], "stats": {}}
    assert callback_parse.to_plan(doc).error == (
        "no inventory host matched Provision indri; check --host/--limit and the inventory"
    )
