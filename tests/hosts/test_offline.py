"""Offline tests of the hosts layer: roles, parsing, patterns, command lines. No SSH here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from invoke.context import Context, MockContext
from invoke.runners import Result

from blumeops_tasks.hosts import ask, callback_parse, house_rules
from blumeops_tasks.hosts import status as probing
from blumeops_tasks.hosts.inventory import Inventory, ProjectError, SshTarget, playbook_for, root_playbooks, ssh_command
from blumeops_tasks.hosts.project import Project, playbook_command
from tests.conftest import REPO, clean_environ, require_tool, run_inv

DATA = Path(__file__).parent / "data"
ROLES = REPO / "roles"
ROLE_NAMES = ["borgmatic", "caddy", "drift_heartbeat", "node_exporter"]
FIXTURE = REPO / "tests" / "fixtures" / "homelab"


# -- roles -----------------------------------------------------------------------------------------


def test_roles_present() -> None:
    assert house_rules.roles(ROLES) == ROLE_NAMES


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_house_rules_hold_for_the_repos_roles(role: str) -> None:
    assert house_rules.spec_findings(ROLES / role) == []
    assert house_rules.header_findings(ROLES / role) == []


def test_argument_spec_drift_and_missing_spec_are_findings(tmp_path: Path) -> None:
    copy = tmp_path / "caddy"
    shutil.copytree(ROLES / "caddy", copy)
    defaults = yaml.safe_load((copy / "defaults/main.yml").read_text())
    defaults["caddy_http_port"] = 8080
    defaults["caddy_new_option"] = "x"
    (copy / "defaults/main.yml").write_text(yaml.safe_dump(defaults))
    findings = house_rules.spec_findings(copy)
    assert "caddy: caddy_http_port default differs between defaults and argument_specs" in findings
    assert "caddy: caddy_new_option is in defaults but not in argument_specs" in findings
    (copy / "meta/argument_specs.yml").unlink()
    assert house_rules.spec_findings(copy)[0] == "caddy: no meta/argument_specs.yml"
    (copy / "templates/Caddyfile.j2").write_text("{{ caddy_admin_address }}\n")
    assert house_rules.header_findings(copy) == ["caddy/Caddyfile.j2: no ansible_managed header"]


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
    assert names == {
        "paths exist": "ok",
        "inventory parses": "ok",
        "requirements installed": "ok",
        "argument specs = defaults": "ok",
        "ansible_managed headers": "ok",
        "syntax site.yml": "ok",  # one check per playbook graph: site.yml imports the host playbooks
    }


def test_inv_check_fails_on_a_broken_playbook_once_per_graph(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(REPO / "playbooks", playbooks)
    (playbooks / "indri.yml").write_text("- hosts: indri\n  roles:\n    - role: no_such_role\n")
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_HOSTS_PLAYBOOKS": str(playbooks)})
    result = run_inv("check", "--layer=hosts", "--json", env=env)
    assert result.returncode == 1
    failed = [c for c in json.loads(result.stdout)["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["syntax site.yml"]
    assert "no_such_role" in failed[0]["detail"]


def test_a_broken_inventory_is_reported_with_ansibles_parse_error(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    indri: [\n")
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_HOSTS_INVENTORY": str(inventory)})
    result = run_inv("check", "--layer=hosts", "--json", env=env)
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["inventory parses"]["status"] == "fail"
    assert "YAML parsing failed" in checks["inventory parses"]["detail"]
    preview = run_inv("hosts.preview", "--host=indri", "--json", env=env)
    assert preview.returncode == 1
    error = json.loads(preview.stdout)["layers"][0]["error"]
    assert "YAML parsing failed" in error
    assert "no inventory host matched" not in error


def test_a_tag_no_task_carries_is_an_error_naming_it(tmp_path: Path) -> None:
    result = run_inv("hosts.preview", "--host=indri", "--tags=caddy,nosuchtag", "--json", env=clean_environ(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    error = json.loads(result.stdout)["layers"][0]["error"]
    assert error.startswith("--tags nosuchtag matches no task in playbooks/indri.yml")
    assert "caddy_configure" in error  # the tags that exist are named


def fixture_copy(tmp_path: Path) -> Path:
    root = tmp_path / "homelab"
    shutil.copytree(FIXTURE, root)
    return root


def test_the_homelab_fixture_passes_inv_check_as_it_is(tmp_path: Path) -> None:
    """ansible/... layout, `hosts: linux:!gilbert`, a run-time set_fact feeding a template, a role
    without meta/argument_specs.yml, a requirements.yml: warnings, never failures."""
    root = fixture_copy(tmp_path)
    env = clean_environ(tmp_path)
    result = run_inv("check", "--layer=hosts", "--json", env=env, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["syntax site.yml"]["status"] == "ok"
    assert set(checks) == {
        "paths exist",
        "inventory parses",
        "requirements installed",
        "argument specs = defaults",
        "ansible_managed headers",
        "syntax site.yml",
    }
    assert checks["argument specs = defaults"]["status"] == "warn"
    assert "motd: no meta/argument_specs.yml" in checks["argument specs = defaults"]["detail"]
    assert checks["requirements installed"]["status"] == "warn"
    assert "collection homelab.tools" in checks["requirements installed"]["detail"]
    strict = run_inv("check", "--layer=hosts", "--json", env={**env, "INVOKE_BLUMEOPS_LINT_STRICT": "1"}, cwd=root)
    assert strict.returncode == 1  # a house rule fails only when the repo asks for it
    # `inv hosts.deps` installs the local collection offline; then nothing is missing.
    deps = run_inv("hosts.deps", env=env, cwd=root)
    assert deps.returncode == 0, deps.stdout + deps.stderr
    assert (root / "ansible/collections/ansible_collections/homelab/tools/MANIFEST.json").is_file()
    again = run_inv("check", "--layer=hosts", "--json", env=env, cwd=root)
    checks = {c["name"]: c["status"] for c in json.loads(again.stdout)["checks"]}
    assert checks["requirements installed"] == "ok"


def test_deps_without_the_network_says_so_in_one_sentence(tmp_path: Path) -> None:
    root = fixture_copy(tmp_path)
    (root / "ansible/requirements.yml").write_text(
        "roles:\n  - src: git+http://127.0.0.1:9/homelab/ansible-role-base.git\n    name: base\n"
    )
    env = clean_environ(tmp_path)
    check = run_inv("check", "--layer=hosts", "--json", env=env, cwd=root)
    assert {c["name"]: c["detail"] for c in json.loads(check.stdout)["checks"]}["requirements installed"] == (
        "not installed from ansible/requirements.yml: role base"
    )
    result = run_inv("hosts.deps", env=env, cwd=root)
    assert result.returncode == 1
    assert "could not reach the network" in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1


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


# -- what we ask Ansible ----------------------------------------------------------------------------

LISTING = """
playbook: playbooks/site.yml

  play #1 (linux:!gilbert): Linux machines except gilbert\tTAGS: []
    pattern: ['linux:!gilbert']
    hosts (2):
      sifaka
      ringtail
    tasks:
      Read the monitoring token\tTAGS: [always]
      motd : Motd | message of the day\tTAGS: [motd]
      TASK TAGS: [always, motd]

  play #2 (macos): Macs\tTAGS: []
    pattern: ['macos']
    hosts (0):
    tasks:
      motd : Motd | message of the day\tTAGS: [motd]
      Not a role : only a task name with a colon\tTAGS: []
      TASK TAGS: [motd]
"""


def test_listing_is_parsed_as_ansible_printed_it() -> None:
    linux, macos = ask.parse_listing(LISTING)
    assert (linux.playbook, linux.name, linux.pattern) == (
        "playbooks/site.yml",
        "Linux machines except gilbert",
        "linux:!gilbert",
    )
    assert linux.hosts == ("ringtail", "sifaka")  # printed from a set by Ansible: sorted
    assert linux.roles() == ["motd"]
    assert macos.hosts == ()
    assert macos.roles({"motd"}) == ["motd"]  # "Not a role" is no role directory
    assert ask.touched_hosts([linux, macos]) == ["ringtail", "sifaka"]
    assert ask.unknown_tags("motd,always,nosuch", ask.all_tags([linux, macos])) == ["nosuch"]


PATTERNS = [
    "all",
    "*",
    "linux",
    "macos",
    "linux:!gilbert",
    "linux,macos",
    "linux:&backup",
    "backup:!macos",
    "all:!linux",
    "macos[0]",
    "macos[0:1]",
    "linux[-1]",
    "linux[1:]",
    "~(in|si).*",
    "~^t",
    "g*",
    "*a*",
    "indri,sifaka",
    "nosuch",
    "backup:&linux:!sifaka",
]


def ansible_list_hosts(root: Path, pattern: str, env: dict[str, str]) -> list[str]:
    """`ansible PATTERN --list-hosts` (the ad-hoc CLI, not the library's playbook listing)."""
    result = subprocess.run(
        ["ansible", pattern, "-i", "ansible/inventory", "--list-hosts"],
        cwd=root,
        env={**env, "ANSIBLE_CONFIG": str(root / "ansible/ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.splitlines()
    if not lines or "hosts (0)" in lines[0]:
        return []
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in lines[1:] if line.strip()]


def fixture_context(root: Path) -> tuple[Context, Project]:
    from invoke.config import Config

    from blumeops_tasks.hosts.project import project
    from blumeops_tasks.namespace import build_namespace

    blumeops = dict(build_namespace(root).configuration()["blumeops"])
    settings = yaml.safe_load((root / "invoke.yaml").read_text())["blumeops"]
    blumeops["hosts"] = {**blumeops["hosts"], **settings["hosts"]}
    blumeops.update(root=str(root), state_dir=str(root / ".blumeops"))
    c = Context(Config(overrides={"blumeops": blumeops}))
    return c, project(c)


def test_the_library_targets_exactly_the_hosts_ansible_lists(tmp_path: Path) -> None:
    require_tool("ansible")
    root = fixture_copy(tmp_path)
    env = clean_environ(tmp_path)
    c, p = fixture_context(root)
    ours = ask.hosts_for(c, p, PATTERNS)
    for pattern in PATTERNS:
        assert sorted(ours[pattern]) == sorted(ansible_list_hosts(root, pattern, env)), pattern
    assert sorted(ours["linux:!gilbert"]) == ["ringtail", "sifaka"]
    assert ours["macos[0]"] == ["indri"]
    # A run's hosts are ansible-playbook's answer for the same --limit.
    from blumeops_tasks.hosts.workflow import selected

    book = p.playbooks / "site.yml"
    assert selected(c, p, book, None, "~(in|si).*").hosts == ["sifaka", "indri"]  # play order, then sorted
    assert selected(c, p, book, "motd", "linux").roles == ["motd"]
    with pytest.raises(ProjectError, match="No inventory host matches"):
        selected(c, p, p.playbooks / "linux.yml", None, "gilbert")


def test_affected_names_only_hosts_ansible_targets(tmp_path: Path) -> None:
    root = fixture_copy(tmp_path)
    env = clean_environ(tmp_path)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "homelab"], cwd=root, check=True)
    with (root / "ansible/playbooks/linux.yml").open("a") as handle:
        handle.write("# touched\n")
    with (root / "ansible/inventory/host_vars/sifaka.yml").open("a") as handle:
        handle.write("# touched\n")
    result = run_inv("affected", "--since=HEAD", "--json", env=env, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    files = {f["path"]: f for f in report["files"]}
    assert files["ansible/playbooks/linux.yml"]["hosts"] == ["ringtail", "sifaka"]  # linux:!gilbert, by Ansible
    assert files["ansible/inventory/host_vars/sifaka.yml"]["hosts"] == ["sifaka"]
    assert report["commands"]["hosts"] == ["inv hosts.provision --limit=ringtail,sifaka"]
    assert "!" not in json.dumps(report["commands"])
    # Role change: the hosts of every play that runs the role, and nothing else.
    with (root / "ansible/roles/motd/templates/motd.j2").open("a") as handle:
        handle.write("{# touched #}\n")
    report = json.loads(run_inv("affected", "--since=HEAD", "--json", env=env, cwd=root).stdout)
    role = next(f for f in report["files"] if f["kind"] == "role")
    assert role["hosts"] == ["indri", "ringtail", "sifaka", "tern"]
    assert "gilbert" not in json.dumps(report["commands"])


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


def test_ssh_target_and_command() -> None:
    target = inventory_fixture().ssh_target("indri")
    assert target == SshTarget("indri", "10.0.0.1", 22, "erich", "", "-o UserKnownHostsFile=/k/known")
    assert target.known_hosts_file() == "/k/known"
    assert ssh_command(target, "true", 5, "-o ControlMaster=auto -o ControlPath=/cp/%C") == (
        "ssh -o BatchMode=yes -o ConnectTimeout=5 -o ControlMaster=auto -o ControlPath=/cp/%C "
        "-p 22 -l erich -o UserKnownHostsFile=/k/known 10.0.0.1 true"
    )
    with pytest.raises(ProjectError, match="Host 'nope' is not in the inventory"):
        inventory_fixture().ssh_target("nope")


def test_playbooks_and_their_graph() -> None:
    assert [b.name for b in root_playbooks(REPO / "playbooks")] == ["site.yml"]
    assert [b.name for b in root_playbooks(FIXTURE / "ansible/playbooks")] == ["site.yml"]
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
    assert ask.listing_command(p, [book], limit="linux:!gilbert", tags="caddy", skip_tags="always") == (
        f"cd {REPO} && ansible-playbook -i /inv playbooks/indri.yml --list-hosts --list-tasks --list-tags "
        "--tags caddy --skip-tags always --limit 'linux:!gilbert'"
    )


def test_our_callback_is_added_to_what_ansible_cfg_configures() -> None:
    from blumeops_tasks.hosts.project import plugin_dir, plugin_env

    configured = ask.Settings(
        {"DEFAULT_CALLBACK_PLUGIN_PATH": ["/repo/callback_plugins"], "CALLBACKS_ENABLED": ["profile_tasks"]}, {}
    )
    env = plugin_env(configured)
    assert env["ANSIBLE_CALLBACK_PLUGINS"] == f"{plugin_dir('callback')}:/repo/callback_plugins"
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "blumeops_results,profile_tasks"
    assert (plugin_dir("callback") / "blumeops_results.py").is_file()


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


def test_a_listing_is_cached_and_a_failure_is_not(tmp_path: Path) -> None:
    from dataclasses import replace

    p = replace(project_fixture(), cache_dir=tmp_path / "cache")
    book = REPO / "playbooks/indri.yml"
    command = ask.listing_command(p, [book])
    failing = MockContext(run={command: Result(exited=1, stderr="[ERROR]: broken\n")})
    with pytest.raises(ProjectError, match=r"Ansible cannot list playbooks/indri\.yml: broken"):
        ask.listing(failing, p, [book])
    with pytest.raises(NotImplementedError):  # a failure was not cached: Ansible is asked again
        ask.listing(MockContext(run={}), p, [book])
    listed = "playbook: playbooks/indri.yml\n\n  play #1 (indri): Provision indri\tTAGS: []\n    pattern: ['indri']\n"
    listed += "    hosts (1):\n      indri\n"
    assert ask.listing(MockContext(run={command: Result(exited=0, stdout=listed)}), p, [book])[0].hosts == ("indri",)
    assert ask.listing(MockContext(run={}), p, [book])[0].hosts == ("indri",)  # cached: nothing runs


def test_ansibles_settings_are_reused_by_a_byte_identical_copy_with_its_own_paths(tmp_path: Path) -> None:
    """An apply's snapshot of the commit is a copy of the clone elsewhere: the settings Ansible gave
    for the clone are reused (nothing runs), with every path under the clone moved into the copy, and
    they are what Ansible itself answers there. A changed ansible.cfg is asked again."""
    require_tool("ansible-config")
    from dataclasses import replace

    clone, copy = tmp_path / "clone", tmp_path / "copy"
    (clone / "callback_plugins").mkdir(parents=True)
    (clone / "ansible.cfg").write_text("[defaults]\nroles_path = roles\ncallback_plugins = callback_plugins\n")
    shutil.copytree(clone, copy)

    def at(root: Path) -> Project:
        return replace(project_fixture(), root=root, config=root / "ansible.cfg", cache_dir=tmp_path / "cache")

    asked = ask.settings(Context(), at(clone))
    assert asked.paths("DEFAULT_ROLES_PATH")[0] == str(clone / "roles")
    reused = ask.settings(MockContext(run={}), at(copy))  # a MockContext with no answers: nothing may run
    uncached = ask.settings(Context(), replace(at(copy), cache_dir=None))
    per_run = {"DEFAULT_LOCAL_TMP"}  # a temporary directory of each ansible process, whatever the copy

    def lasting(found: ask.Settings) -> dict[str, object]:
        return {name: value for name, value in found.values.items() if name not in per_run}

    assert lasting(reused) == lasting(uncached)
    assert reused.ssh == uncached.ssh
    assert reused.paths("DEFAULT_CALLBACK_PLUGIN_PATH") == [str(copy / "callback_plugins")]
    (copy / "ansible.cfg").write_text("[defaults]\nroles_path = elsewhere\n")
    with pytest.raises(NotImplementedError):  # another content: Ansible is asked again
        ask.settings(MockContext(run={}), at(copy))


def test_the_listing_and_the_inventory_are_reused_by_a_byte_identical_copy(tmp_path: Path) -> None:
    """An apply's snapshot of the commit is a copy of the clone elsewhere: Ansible's listing of a
    playbook and its inventory, asked for the clone, are reused there (nothing runs), and they are what
    Ansible answers there. An edit of a role asks for the listing again, one of host_vars for both."""
    require_tool("ansible-playbook")
    from dataclasses import replace

    from blumeops_tasks.hosts.project import load_inventory

    clone, copy = tmp_path / "clone", tmp_path / "copy"
    clone.mkdir()
    for name in ("inventory", "playbooks", "roles"):
        shutil.copytree(REPO / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "ansible.cfg", clone / "ansible.cfg")
    shutil.copytree(clone, copy)

    def at(root: Path) -> Project:
        return replace(
            project_fixture(),
            root=root,
            inventory=root / "inventory",
            playbooks=root / "playbooks",
            roles=root / "roles",
            config=root / "ansible.cfg",
            cache_dir=tmp_path / "cache",
        )

    asked = ask.listing(Context(), at(clone), [clone / "playbooks" / "site.yml"])
    inventory = load_inventory(Context(), at(clone))
    nothing_runs = MockContext(run={})  # a MockContext with no answers: a command would raise
    assert ask.listing(nothing_runs, at(copy), [copy / "playbooks" / "site.yml"]) == asked
    assert load_inventory(nothing_runs, at(copy)) == inventory
    uncached = replace(at(copy), cache_dir=None)
    assert ask.listing(Context(), uncached, [copy / "playbooks" / "site.yml"]) == asked
    assert load_inventory(Context(), uncached) == inventory

    with (copy / "roles" / "caddy" / "tasks" / "main.yml").open("a") as tasks:
        tasks.write("# an edit\n")
    with pytest.raises(NotImplementedError):
        ask.listing(nothing_runs, at(copy), [copy / "playbooks" / "site.yml"])
    assert load_inventory(nothing_runs, at(copy)) == inventory  # the inventory does not read roles
    with (copy / "inventory" / "host_vars" / "indri.yml").open("a") as host_vars:
        host_vars.write("# an edit\n")
    with pytest.raises(NotImplementedError):
        load_inventory(nothing_runs, at(copy))


def test_vault_data_is_read_by_ansibles_loader_and_a_wrong_password_is_one_sentence(tmp_path: Path) -> None:
    """The tasks' decrypt step (the shared vault walk, in ansible-playbook's interpreter): the plaintext
    with the configured password; with another, one sentence naming the file, no traceback."""
    require_tool("ansible-vault")
    from dataclasses import replace

    from blumeops_tasks.hosts import vault

    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("correct horse\n")
    wrong.write_text("battery staple\n")
    secret = tmp_path / "secret.yml"
    subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(right), "--output", str(secret), "-"],
        input="token: vaulted-Kx4-offline\n",
        text=True,
        check=True,
        capture_output=True,
    )
    p = replace(project_fixture(), root=tmp_path, config=tmp_path / "ansible.cfg")
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\nvault_password_file = {right}\n")
    assert vault.vault_values(Context(), p, [secret]) == ["vaulted-Kx4-offline"]
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\nvault_password_file = {wrong}\n")
    with pytest.raises(ProjectError, match=r"Ansible cannot decrypt the vault data in secret\.yml: .*secret\.yml"):
        vault.vault_values(Context(), p, [secret])


def test_the_reach_check_shares_ansibles_control_path(tmp_path: Path) -> None:
    from blumeops_tasks.hosts.checks import reach_ssh_args

    persist = "-o ControlMaster=auto -o ControlPersist=60s"
    derived = {"ssh_args": persist, "control_path": "%(directory)s/%%C", "control_path_dir": str(tmp_path / "cp")}
    assert reach_ssh_args(derived) == f"{persist} -o ControlPath={tmp_path / 'cp'}/%C"
    assert (tmp_path / "cp").is_dir()
    own = {"ssh_args": f"{persist} -o ControlPath={tmp_path}/own/%C", "control_path": None}
    assert reach_ssh_args(own) == own["ssh_args"]  # the operator's own ControlPath, as Mitogen needs it
    assert (tmp_path / "own").is_dir()
    assert reach_ssh_args({"ssh_args": "-o ServerAliveInterval=15", "control_path": None}) == (
        "-o ServerAliveInterval=15"
    )


def test_no_matching_host_is_an_error_not_an_empty_plan() -> None:
    doc = {"complete": True, "plays": ["Provision indri"], "tasks": [], "stats": {}}
    assert callback_parse.to_plan(doc).error == (
        "no inventory host matched Provision indri; check --host/--limit and the inventory"
    )
