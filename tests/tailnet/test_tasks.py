"""The tasks through invoke's MockContext: exact command lines, environment, exit codes, refusals."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import Exit
from invoke.runners import Result

from blumeops_tasks import shell
from blumeops_tasks.console import Declined
from blumeops_tasks.gitops.session import ApplyRecord
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.preflight import run_checks
from blumeops_tasks.tailnet import checks, tasks, workflow
from tests.tailnet.conftest import context, fixture_text, make_root

PYTHON = sys.executable  # real: the mock runner runs the program with it


def where(root: Path) -> str:
    return f"--cwd {root}/pulumi --stack homelab --non-interactive"


def env(root: Path) -> dict[str, str]:
    return {
        "PULUMI_BACKEND_URL": f"file://{root}/pulumi/.pulumi-state",
        "PULUMI_PYTHON_CMD": PYTHON,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


@pytest.fixture
def cli_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell, "which", lambda tool: f"/opt/bin/{tool}")


def runs(root: Path, preview: str, **more: Result) -> dict[str, Result]:
    return {
        "pulumi version": Result("v3.272.0\n"),
        f"pulumi preview --json --refresh {where(root)}": Result(preview),
        **more,
    }


# --- preview -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_preview_runs_the_exact_command_with_the_environment(root: Path) -> None:
    c = context(root, runs(root, fixture_text("preview_update.json")), python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert stopped.value.code == 2
    c.run.assert_any_call(
        f"pulumi preview --json --refresh {where(root)}",
        env=env(root),
        hide=True,
        warn=True,
        in_stream=False,
        timeout=None,
    )
    for call in c.run.call_args_list:  # secrets reach pulumi through the inherited environment only
        assert "SECRETVALUE" not in call.args[0]
        assert "correct horse" not in call.args[0]
        assert not any("TAILSCALE" in key or "PASSPHRASE" in key for key in call.kwargs["env"])


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_preview_without_changes_exits_zero(root: Path) -> None:
    c = context(root, runs(root, fixture_text("preview_none.json")), python=PYTHON)
    tasks.preview(c)  # returns: exit 0


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_preview_json_prints_the_plan_model(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = context(root, runs(root, fixture_text("preview_replace.json")), python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c, json=True)
    assert stopped.value.code == 2
    document = json.loads(capsys.readouterr().out)
    change = document["layers"][0]["targets"][0]["changes"][0]
    assert (change["action"], change["resource"]) == ("replace", "DeviceTags sifaka")


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_preview_error_diagnostics_exit_one(root: Path) -> None:
    c = context(root, runs(root, fixture_text("preview_error.json")), python=PYTHON)
    c.set_result_for(
        "run", f"pulumi preview --json --refresh {where(root)}", Result(fixture_text("preview_error.json"), exited=4)
    )
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert stopped.value.code == 1
    assert "Failed to find device with hostname" in str(stopped.value.message)


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_lockout_policy_is_refused_before_pulumi_runs_when_lint_is_strict(root: Path) -> None:
    policy = root / "pulumi" / "policy.hujson"
    policy.write_text(policy.read_text().replace('"tag:indri:22", ', ""), encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_update.json")), strict=True, python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert stopped.value.code == 1
    assert str(stopped.value.message).startswith(
        "Refusing to preview the tailnet: lockout guard: "
        "policy tests no longer guarantee operator@example.com → tag:indri:22 (SSH);"
    )
    assert not [call for call in c.run.call_args_list if "preview" in call.args[0]]


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_lockout_breach_refuses_the_preview_even_when_lint_is_lax(root: Path) -> None:
    policy = root / "pulumi" / "policy.hujson"
    policy.write_text(policy.read_text().replace('"tag:indri:22", ', ""), encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_none.json")), python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert stopped.value.code == 1
    assert "lockout guard: policy tests no longer guarantee" in str(stopped.value.message)


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_device_missing_from_inventory_is_refused_when_lint_is_strict(root: Path) -> None:
    devices = root / "pulumi" / "devices.yaml"
    devices.write_text(devices.read_text().replace("  sifaka:", "  toaster:"), encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_none.json")), strict=True, python=PYTHON)
    with pytest.raises(Exit, match="devices known: device not in the inventory: toaster"):
        tasks.preview(c)


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_devices_file_of_the_wrong_shape_is_one_sentence_naming_it(root: Path) -> None:
    (root / "pulumi" / "devices.yaml").write_text("- indri\n- sifaka\n", encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_none.json")), python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    message = str(stopped.value.message)
    assert stopped.value.code == 1
    assert message.startswith("Refusing to preview the tailnet: program under mocks: ")
    assert "devices.yaml: expected a mapping" in message
    assert "more failing checks" not in message  # one row fails, not four


@pytest.mark.usefixtures("creds")
def test_missing_cli_is_one_sentence_with_the_fix(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell, "which", lambda _tool: None)
    c = context(root, {}, python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert str(stopped.value.message) == (
        "Refusing to preview the tailnet: pulumi CLI: the pulumi CLI is not on PATH; "
        "run `mise install` (mise.toml pins the pulumi CLI), or put pulumi on PATH."
    )


@pytest.mark.usefixtures("cli_on_path")
def test_missing_credentials_are_named(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")
    c = context(root, runs(root, ""), python=PYTHON)
    with pytest.raises(Exit, match="credentials: neither TAILSCALE_OAUTH_CLIENT_ID"):
        tasks.preview(c)


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_house_rule_warnings_reach_the_plan_of_inv_plan(root: Path) -> None:
    devices = root / "pulumi" / "devices.yaml"
    devices.write_text(devices.read_text().replace("  sifaka:", "  toaster:"), encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_delete.json")), python=PYTHON)
    plan = workflow.preview_plan(c)
    assert (plan.error, plan.counts()["delete"]) == (None, 1)
    assert "warning: devices known: device not in the inventory: toaster" in plan.note


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_layer_plan_for_inv_plan(root: Path) -> None:
    c = context(root, runs(root, fixture_text("preview_delete.json")), python=PYTHON)
    plan = workflow.preview_plan(c)
    assert plan.counts()["delete"] == 1


# --- up ------------------------------------------------------------------------------------------


class FakeRecord(ApplyRecord):
    """The real record's `review`, with the journal fields replaced by plain attributes."""

    def __init__(self) -> None:
        self.plan: LayerPlan | None = None
        self.marked = ""
        self.message = ""

    def set_plan(self, plan: LayerPlan) -> None:
        self.plan = plan

    def mark(self, result: str) -> None:
        self.marked = result

    def note(self, message: str) -> None:
        self.message = message

    def snapshot(self) -> Path:
        """The apply reads the repo in place here (the snapshot has its own tests: tests/gitops)."""
        self.snapshots = getattr(self, "snapshots", 0) + 1
        return Path.cwd()


@pytest.fixture
def applying(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The GitOps guard replaced by a recorder (its own tests cover it; this pins our call)."""
    seen: dict[str, Any] = {}

    @contextmanager
    def fake(c: Any, layer: Any, **kwargs: Any) -> Iterator[FakeRecord]:
        seen.update(kwargs, layer=layer.name, record=FakeRecord())
        yield seen["record"]

    monkeypatch.setattr("blumeops_tasks.gitops.session.applying", fake)
    return seen


def saved_plan(root: Path) -> Path:
    return root / ".blumeops" / "tailnet" / "plans" / "homelab.json"


def save_plan_on_preview(c: Any) -> Any:
    """Make the mocked `pulumi preview --save-plan=FILE` write FILE, as the CLI does; returns the original run."""
    original = c.run

    def run(command: str, **kwargs: Any) -> Any:
        for word in command.split():
            if word.startswith("--save-plan="):
                Path(word.removeprefix("--save-plan=")).write_text('{"resourcePlans": {}}', encoding="utf-8")
        return original(command, **kwargs)

    c.run = run
    return original


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_with_yes_applies_the_saved_plan_then_rechecks(root: Path, applying: dict[str, Any]) -> None:
    plan_file = saved_plan(root)
    preview_saving = f"pulumi preview --json --refresh --save-plan={plan_file} {where(root)}"
    up_cmd = f"pulumi up --yes --skip-preview --refresh --plan={plan_file} {where(root)}"
    c = context(
        root,
        runs(
            root,
            fixture_text("preview_none.json"),  # the re-check after the apply
            **{preview_saving: Result(fixture_text("preview_update.json")), up_cmd: Result("Resources: 2 updated\n")},
        ),
        python=PYTHON,
    )
    original = save_plan_on_preview(c)

    tasks.up(c, yes=True, allow_dirty=True)
    assert applying["task"] == "tailnet.up"
    assert applying["targets"] == ["homelab"]
    assert applying["allow_dirty"] is True
    assert applying["record"].plan.counts()["update"] == 2
    assert applying["record"].message == "applied update 2"
    commands = [call.args[0] for call in original.call_args_list if call.args[0].startswith("pulumi ")]
    assert commands[-3:] == [preview_saving, up_cmd, f"pulumi preview --json --refresh {where(root)}"]
    assert plan_file.is_file()
    (up_call,) = [call for call in original.call_args_list if call.args[0].startswith("pulumi up")]
    assert up_call.kwargs["env"] == env(root)
    assert up_call.kwargs["warn"] is True
    assert up_call.kwargs["hide"] is False  # pulumi's own progress is shown, redacted


def saving_runs(root: Path, preview: str, **more: Result) -> dict[str, Result]:
    saving = f"pulumi preview --json --refresh --save-plan={saved_plan(root)} {where(root)}"
    return runs(root, preview, **{saving: Result(preview)}, **more)


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_refuses_when_the_preview_saved_no_plan(root: Path, applying: dict[str, Any]) -> None:
    c = context(root, saving_runs(root, fixture_text("preview_update.json")), python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.up(c, yes=True)  # the mocked preview writes no plan file, as a CLI without --save-plan
    assert stopped.value.code == 1
    assert "saved no update plan" in str(stopped.value.message)
    assert not [call for call in c.run.call_args_list if call.args[0].startswith("pulumi up")]


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_without_yes_and_without_a_terminal_refuses(root: Path, applying: dict[str, Any]) -> None:
    c = context(root, saving_runs(root, fixture_text("preview_update.json")), python=PYTHON)
    with pytest.raises(Declined) as stopped:
        tasks.up(c)
    assert str(stopped.value.message).startswith("Refusing to apply the tailnet stack homelab without confirmation")
    assert not [call for call in c.run.call_args_list if call.args[0].startswith("pulumi up")]


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_with_nothing_to_do_marks_no_changes(root: Path, applying: dict[str, Any]) -> None:
    c = context(root, saving_runs(root, fixture_text("preview_none.json")), python=PYTHON)
    tasks.up(c)
    assert applying["record"].marked == "no-changes"


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_failure_passes_the_exit_code_through_with_its_meaning(root: Path, applying: dict[str, Any]) -> None:
    up_cmd = f"pulumi up --yes --skip-preview --refresh --plan={saved_plan(root)} {where(root)}"
    c = context(
        root, saving_runs(root, fixture_text("preview_update.json"), **{up_cmd: Result("", exited=3)}), python=PYTHON
    )
    save_plan_on_preview(c)
    with pytest.raises(Exit) as stopped:
        tasks.up(c, yes=True)
    assert stopped.value.code == 3
    assert str(stopped.value.message).startswith(
        "pulumi up failed with exit code 3 (authentication failed (backend login or cloud credentials));"
    )


# --- preflight outcomes ----------------------------------------------------------------------------


def test_old_cli_is_a_warning(root: Path, cli_on_path: None) -> None:
    c = context(root, {"pulumi version": Result("v3.200.0\n")}, python=PYTHON)
    outcome = checks.cli_outcome(c, checks.target(c))
    assert (outcome.status, outcome.detail) == ("warn", "pulumi 3.200.0: every error exits 255")


def test_backend_and_stack_missing_point_at_init(tmp_path: Path) -> None:
    root = make_root(tmp_path / "repo", state=False)
    c = context(root, {}, python=PYTHON)
    tgt = checks.target(c)
    backend = checks.backend_outcome(c, tgt)
    assert backend.status == "fail"
    assert backend.detail == f"local backend {root}/pulumi/.pulumi-state does not exist"
    assert backend.fix == "run `inv tailnet.init` to create it and the stack"
    assert checks.stack_outcome(c, tgt).detail == f"stack homelab not found in {root}/pulumi/.pulumi-state"


def test_remote_backend_uses_whoami_and_stack_ls(root: Path, cli_on_path: None) -> None:
    stack_ls = f"pulumi stack ls --json --cwd {root}/pulumi --non-interactive"
    c = context(
        root,
        {
            "pulumi whoami --non-interactive": Result("operator\n"),
            stack_ls: Result(json.dumps([{"name": "me/homelab"}, {"name": "me/other"}])),
        },
        python=PYTHON,
        backend_url="https://api.pulumi.com",
    )
    tgt = checks.target(c)
    assert checks.backend_outcome(c, tgt).detail == "https://api.pulumi.com as operator"
    assert checks.stack_outcome(c, tgt).status == "ok"


def test_remote_backend_login_failure_names_the_meaning(root: Path, cli_on_path: None) -> None:
    c = context(root, {"pulumi whoami --non-interactive": Result("", exited=3)}, backend_url="https://x.example")
    outcome = checks.backend_outcome(c, checks.target(c))
    assert outcome.detail == "backend https://x.example: authentication failed (backend login or cloud credentials)"


def test_passphrase_needed_for_the_local_backend(root: Path) -> None:
    c = context(root, {})
    outcome = checks.passphrase_outcome(checks.target(c), {})
    assert outcome.status == "fail"
    assert checks.passphrase_outcome(checks.target(c), {"PULUMI_CONFIG_PASSPHRASE": ""}).status == "ok"


def test_inventory_missing_is_said_plainly(root: Path) -> None:
    (root / "inventory" / "hosts.yml").unlink()
    (root / "inventory").rmdir()
    c = context(root, {})
    specs = {spec.name: spec for spec in checks.offline_checks(c)}
    outcome = specs["devices known"].run()
    assert outcome.status == "skip"
    # blumeops.hosts.inventory names the directory or its hosts.yml, depending on the hosts layer.
    assert outcome.detail.startswith(f"no inventory at {root}/inventory")
    assert outcome.detail.endswith(", so the devices are not checked against the hosts")


def test_inventory_hosts_from_all_groups(root: Path) -> None:
    # Ansible's answer (ansible-inventory --list through the hosts layer's reader).
    assert checks.inventory_hosts(context(root), root / "inventory" / "hosts.yml") == {"indri", "sifaka", "gilbert"}
    assert checks.inventory_hosts(context(root), root / "inventory") == {"indri", "sifaka", "gilbert"}


# --- the offline checks as `inv check` runs them ------------------------------------------------------


def run_offline(root: Path, strict: bool = False) -> dict[str, Any]:
    c = context(root, {}, strict=strict)
    results = run_checks(checks.offline_checks(c), default_timeout=30)
    return {r.name: r for r in results}


def test_offline_checks_pass_on_the_shipped_files(root: Path) -> None:
    results = run_offline(root)
    assert {name: r.status for name, r in results.items()} == {
        "policy syntax": "ok",
        "program under mocks": "ok",
        "tags declared": "ok",
        "devices known": "ok",
        "lockout guard": "ok",
    }


def test_broken_policy_fails_syntax_and_skips_what_needs_it(root: Path) -> None:
    policy = root / "pulumi" / "policy.hujson"
    policy.write_text(policy.read_text().replace('"tagOwners": {', '"tagOwners" {'), encoding="utf-8")
    results = run_offline(root)
    assert results["policy syntax"].status == "fail"
    assert results["policy syntax"].detail.startswith("policy.hujson:16:")
    assert (results["tags declared"].status, results["lockout guard"].status) == ("skip", "skip")
    assert [name for name, r in results.items() if r.status == "fail"] == ["policy syntax"]


@pytest.mark.parametrize(("strict", "status"), [(False, "warn"), (True, "fail")])
def test_undeclared_device_tag_is_a_house_rule_naming_the_resource(root: Path, strict: bool, status: str) -> None:
    devices = root / "pulumi" / "devices.yaml"
    devices.write_text(devices.read_text().replace("[tag:homelab, tag:nas]", "[tag:homelab, tag:backup]"))
    result = run_offline(root, strict)["tags declared"]
    assert (result.status, result.detail) == (status, "undeclared tag: tag:backup (used in DeviceTags sifaka)")


def test_no_backend_anywhere_asks_pulumi_login(tmp_path: Path, cli_on_path: None) -> None:
    root = make_root(tmp_path / "repo", state=False)
    project = root / "pulumi" / "Pulumi.yaml"
    project.write_text(project.read_text().replace("backend:\n  url: file://./.pulumi-state\n", ""))
    c = context(root, {"pulumi whoami --non-interactive": Result("operator\n")})
    tgt = checks.target(c)
    assert tgt.backend_url == ""
    assert checks.backend_outcome(c, tgt).detail == "the backend of `pulumi login` as operator"


def test_no_stack_chosen_is_a_preflight_row_and_one_sentence_for_up(tmp_path: Path) -> None:
    root = make_root(tmp_path / "repo")
    (root / "pulumi" / "Pulumi.other.yaml").write_text("config: {}\n")
    c = context(root, {})
    outcome = checks.stack_outcome(c, checks.target(c))
    assert outcome.status == "fail"
    assert "several stack files (homelab, other)" in outcome.detail
    assert outcome.fix == "set blumeops.tailnet.stack in invoke.yaml"
    with pytest.raises(Exit, match=r"^Cannot apply the tailnet stack: blumeops\.tailnet\.stack is empty"):
        tasks.up(c, yes=True)


def test_when_the_program_fails_the_tags_row_says_what_it_did_not_read(root: Path) -> None:
    (root / "pulumi" / "devices.yaml").write_text("- indri\n", encoding="utf-8")
    results = run_offline(root)
    assert results["tags declared"].status == "ok"
    assert "the program's own tags were not read" in results["tags declared"].detail
    assert results["devices known"].status == "skip"


def test_a_program_that_looks_up_no_device_says_so() -> None:
    outcome = checks.devices_outcome([], {"indri"}, Path("inventory"), strict=True)
    assert (outcome.status, outcome.detail) == ("ok", "the program looks up no device by name (get_device)")


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_an_unwritable_plan_directory_is_one_sentence_before_pulumi_runs(root: Path, applying: dict[str, Any]) -> None:
    plans = saved_plan(root).parent
    plans.parent.mkdir(parents=True)
    plans.write_text("not a directory")  # the plans directory cannot be made, even as root
    c = context(root, saving_runs(root, fixture_text("preview_update.json")), python=PYTHON)
    with pytest.raises(Exit, match=r"^Cannot keep the update plan at "):
        tasks.up(c, yes=True)
    assert not [call for call in c.run.call_args_list if call.args[0].startswith("pulumi preview")]


def test_credentials_may_come_from_the_stack_config() -> None:
    stack = {"config": {"tailscale:tailnet": "tail4c2e1.ts.net", "tailscale:apiKey": {"secure": "v1:abc"}}}
    outcome = checks.credentials_outcome({}, stack)
    assert (outcome.status, outcome.detail) == ("ok", "Tailscale API key for tailnet tail4c2e1.ts.net")
    only_tailnet = checks.credentials_outcome({}, {"config": {"tailscale:tailnet": "tail4c2e1.ts.net"}})
    assert only_tailnet.status == "fail"
    assert "TAILSCALE_TAILNET" not in only_tailnet.detail
    assert "v1:abc" not in str(checks.credentials_outcome({"TAILSCALE_API_KEY": "k"}, stack))


def test_credentials_from_an_esc_environment_are_not_checkable_here() -> None:
    outcome = checks.credentials_outcome({}, {"environment": ["homelab/tailnet"]})
    assert outcome.status == "skip"
    assert "ESC" in outcome.detail
