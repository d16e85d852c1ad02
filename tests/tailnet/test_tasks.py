"""The tasks through invoke's MockContext: exact command lines, environment, exit codes, refusals."""

from __future__ import annotations

import json
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

PYTHON = "/venv/bin/python"


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
        f"pulumi preview --json {where(root)}": Result(preview),
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
        f"pulumi preview --json {where(root)}", env=env(root), hide=True, warn=True, in_stream=False, timeout=None
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
        "run", f"pulumi preview --json {where(root)}", Result(fixture_text("preview_error.json"), exited=4)
    )
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert stopped.value.code == 1
    assert "Failed to find device with hostname" in str(stopped.value.message)


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_lockout_policy_is_refused_before_pulumi_runs(root: Path) -> None:
    policy = root / "pulumi" / "policy.hujson"
    policy.write_text(policy.read_text().replace('"tag:indri:22", ', ""), encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_update.json")), python=PYTHON)
    with pytest.raises(Exit) as stopped:
        tasks.preview(c)
    assert stopped.value.code == 1
    assert str(stopped.value.message).startswith(
        "Refusing to preview the tailnet: lockout guard: "
        "policy tests no longer guarantee operator@example.com → tag:indri:22 (SSH);"
    )
    assert not [call for call in c.run.call_args_list if "preview" in call.args[0]]


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_device_missing_from_inventory_is_refused(root: Path) -> None:
    devices = root / "pulumi" / "devices.yaml"
    devices.write_text(devices.read_text() + "\n", encoding="utf-8")
    devices.write_text(devices.read_text().replace("  sifaka:", "  toaster:"), encoding="utf-8")
    c = context(root, runs(root, fixture_text("preview_none.json")), python=PYTHON)
    with pytest.raises(Exit, match="devices known: device not in the inventory: toaster"):
        tasks.preview(c)


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


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_with_yes_runs_pulumi_up_then_rechecks(root: Path, applying: dict[str, Any]) -> None:
    c = context(root, runs(root, fixture_text("preview_update.json")), python=PYTHON)
    up_cmd = f"pulumi up --yes --skip-preview {where(root)}"
    previews = iter([fixture_text("preview_update.json"), fixture_text("preview_none.json")])
    c.set_result_for("run", f"pulumi preview --json {where(root)}", Result(next(previews)))
    c.set_result_for("run", up_cmd, Result("Resources: 2 updated\n"))

    original = c.run

    def run(command: str, **kwargs: Any) -> Any:
        if command.startswith("pulumi up"):
            result = original(command, **kwargs)
            c.set_result_for("run", f"pulumi preview --json {where(root)}", Result(next(previews)))
            return result
        return original(command, **kwargs)

    c.run = run  # type: ignore[method-assign]
    tasks.up(c, yes=True, allow_dirty=True)
    assert applying["task"] == "tailnet.up"
    assert applying["targets"] == ["homelab"]
    assert applying["allow_dirty"] is True
    assert applying["record"].plan.counts()["update"] == 2
    assert applying["record"].message == "applied update 2"
    (up_call,) = [call for call in original.call_args_list if call.args[0].startswith("pulumi up")]
    assert up_call.args[0] == up_cmd
    assert up_call.kwargs["env"] == env(root)
    assert up_call.kwargs["warn"] is True
    assert up_call.kwargs["hide"] is False  # pulumi's own progress is shown, redacted


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_without_yes_and_without_a_terminal_refuses(root: Path, applying: dict[str, Any]) -> None:
    c = context(root, runs(root, fixture_text("preview_update.json")), python=PYTHON)
    with pytest.raises(Declined) as stopped:
        tasks.up(c)
    assert str(stopped.value.message).startswith("Refusing to apply the tailnet stack homelab without confirmation")
    assert not [call for call in c.run.call_args_list if call.args[0].startswith("pulumi up")]


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_with_nothing_to_do_marks_no_changes(root: Path, applying: dict[str, Any]) -> None:
    c = context(root, runs(root, fixture_text("preview_none.json")), python=PYTHON)
    tasks.up(c)
    assert applying["record"].marked == "no-changes"


@pytest.mark.usefixtures("creds", "cli_on_path")
def test_up_failure_passes_the_exit_code_through_with_its_meaning(root: Path, applying: dict[str, Any]) -> None:
    up_cmd = f"pulumi up --yes --skip-preview {where(root)}"
    c = context(root, runs(root, fixture_text("preview_update.json"), **{up_cmd: Result("", exited=3)}), python=PYTHON)
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
    specs = {spec.name: spec for spec in checks.policy_checks(c)}
    outcome = specs["devices known"].run()
    assert outcome.status == "fail"
    # blumeops.hosts.inventory names the directory or its hosts.yml, depending on the hosts layer.
    assert outcome.detail.startswith(f"inventory {root}/inventory")
    assert outcome.detail.endswith(" is missing, so the devices cannot be checked against the hosts")


def test_inventory_hosts_from_all_groups(root: Path) -> None:
    # Ansible's answer (ansible-inventory --list through the hosts layer's reader).
    assert checks.inventory_hosts(context(root), root / "inventory" / "hosts.yml") == {"indri", "sifaka", "gilbert"}
    assert checks.inventory_hosts(context(root), root / "inventory") == {"indri", "sifaka", "gilbert"}


# --- the offline checks as `inv check` runs them ------------------------------------------------------


def run_offline(root: Path) -> dict[str, Any]:
    c = context(root, {})
    results = run_checks(checks.policy_checks(c), default_timeout=30)
    return {r.name: r for r in results}


def test_offline_checks_pass_on_the_shipped_files(root: Path) -> None:
    results = run_offline(root)
    assert {name: r.status for name, r in results.items()} == {
        "policy syntax": "ok",
        "tags declared": "ok",
        "devices known": "ok",
        "lockout guard": "ok",
    }


def test_broken_policy_fails_syntax_and_skips_what_needs_it(root: Path) -> None:
    policy = root / "pulumi" / "policy.hujson"
    policy.write_text(policy.read_text().replace('"tagOwners": {', '"tagOwners" {'), encoding="utf-8")
    results = run_offline(root)
    assert results["policy syntax"].detail == "policy.hujson:16:14: Expecting ':' delimiter"
    assert results["tags declared"].detail == "policy.hujson does not parse"
    assert results["lockout guard"].fix == "fix the syntax error first"
    assert results["devices known"].status == "ok"


def test_undeclared_device_tag_fails_the_tags_check(root: Path) -> None:
    devices = root / "pulumi" / "devices.yaml"
    devices.write_text(devices.read_text().replace("[tag:homelab, tag:nas]", "[tag:homelab, tag:backup]"))
    assert run_offline(root)["tags declared"].detail == (
        "undeclared tag: tag:backup (used in devices.yaml devices.sifaka)"
    )
