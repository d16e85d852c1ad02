"""The CLI wrapper's pure parts: command lines, environment, exit-code meanings, credentials, backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from blumeops_tasks.tailnet import pulumi_cli
from blumeops_tasks.tailnet.pulumi_cli import Project, Target


def target(tmp_path: Path) -> Target:
    return Target("pulumi", tmp_path / "my pulumi", "homelab", "file:///state", "/venv/bin/python")


def test_command_lines_pin_dir_stack_and_non_interactive(tmp_path: Path) -> None:
    t = target(tmp_path)
    where = f"--cwd '{tmp_path}/my pulumi' --stack homelab --non-interactive"
    assert pulumi_cli.preview_command(t) == f"pulumi preview --json --refresh {where}"
    plan = tmp_path / "state" / "homelab.json"
    assert pulumi_cli.preview_command(t, plan) == f"pulumi preview --json --refresh --save-plan={plan} {where}"
    assert pulumi_cli.up_command(t, plan) == f"pulumi up --yes --skip-preview --refresh --plan={plan} {where}"
    assert pulumi_cli.init_command(t) == f"pulumi stack init --secrets-provider passphrase {where}"
    assert pulumi_cli.stack_ls_command(t) == f"pulumi stack ls --json --cwd '{tmp_path}/my pulumi' --non-interactive"
    assert pulumi_cli.version_command(t) == "pulumi version"


def test_env_carries_only_non_secret_settings(tmp_path: Path) -> None:
    assert pulumi_cli.env_for(target(tmp_path)) == {
        "PULUMI_BACKEND_URL": "file:///state",
        "PULUMI_PYTHON_CMD": "/venv/bin/python",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }


def test_no_backend_configured_leaves_pulumis_own_login(tmp_path: Path) -> None:
    t = Target("pulumi", tmp_path, "homelab", "", "/venv/bin/python")
    assert "PULUMI_BACKEND_URL" not in pulumi_cli.env_for(t)


def test_stack_is_the_setting_else_the_only_stack_file(tmp_path: Path) -> None:
    assert pulumi_cli.resolve_stack("", tmp_path) == ""
    (tmp_path / "Pulumi.yaml").write_text("name: p\n")
    (tmp_path / "Pulumi.tail4c2e1.yaml").write_text("config: {}\n")
    assert pulumi_cli.resolve_stack("", tmp_path) == "tail4c2e1"
    assert pulumi_cli.resolve_stack("prod", tmp_path) == "prod"
    (tmp_path / "Pulumi.other.yaml").write_text("config: {}\n")
    assert pulumi_cli.resolve_stack("", tmp_path) == ""
    assert pulumi_cli.stack_files(tmp_path) == ["other", "tail4c2e1"]


def test_project_and_stack_files_of_a_wrong_shape_read_as_empty(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("- a list\n")
    (tmp_path / "Pulumi.s.yaml").write_text("- a list\n")
    assert pulumi_cli.read_project(tmp_path) == Project("", "")
    assert pulumi_cli.stack_config(tmp_path, "s") == {}
    assert pulumi_cli.read_project(tmp_path / "missing") == Project("", "")


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (0, "success"),
        (2, "configuration or validation error (bad config, or --yes missing when non-interactive)"),
        (3, "authentication failed (backend login or cloud credentials)"),
        (4, "resource error: the provider or deployment failed (see the messages above)"),
        (6, "stack not found (create it with `inv tailnet.init`)"),
        (7, "changes pending with --expect-no-changes"),
        (255, "internal error (CLIs older than 3.226 return 255 for every error)"),
        (42, "unknown exit code"),
    ],
)
def test_exit_meanings(code: int, meaning: str) -> None:
    assert pulumi_cli.exit_meaning(code) == meaning


def test_parse_version() -> None:
    assert pulumi_cli.parse_version("v3.272.0\n") == (3, 272, 0)
    assert pulumi_cli.parse_version("warning: x\nv3.100.1-dev") == (3, 100, 1)
    assert pulumi_cli.parse_version("nonsense") is None


def test_backend_precedence_and_relative_file_urls(tmp_path: Path) -> None:
    project = Project("blumeops-tailnet", "file://./.pulumi-state")
    assert pulumi_cli.resolve_backend("", {}, project, tmp_path) == f"file://{tmp_path}/.pulumi-state"
    env = {"PULUMI_BACKEND_URL": "https://api.pulumi.com"}
    assert pulumi_cli.resolve_backend("", env, project, tmp_path) == "https://api.pulumi.com"
    assert pulumi_cli.resolve_backend("file:///srv/state", env, project, tmp_path) == "file:///srv/state"
    assert pulumi_cli.resolve_backend("", {}, Project("p", ""), tmp_path) == ""  # pulumi login's choice
    assert pulumi_cli.file_backend_path("s3://bucket", tmp_path) is None


def test_stack_state_files(tmp_path: Path) -> None:
    files = pulumi_cli.stack_state_files(tmp_path, "proj", "homelab")
    assert files[0] == tmp_path / ".pulumi" / "stacks" / "proj" / "homelab.json"
    assert tmp_path / ".pulumi" / "stacks" / "homelab.json" in files


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"TAILSCALE_API_KEY": "k", "TAILSCALE_TAILNET": "t"}, ""),
        ({"TAILSCALE_OAUTH_CLIENT_ID": "i", "TAILSCALE_OAUTH_CLIENT_SECRET": "s", "TAILSCALE_TAILNET": "t"}, ""),
        (
            {"TAILSCALE_API_KEY": "k", "TAILSCALE_OAUTH_CLIENT_ID": "i", "TAILSCALE_TAILNET": "t"},
            "both TAILSCALE_API_KEY and TAILSCALE_OAUTH_CLIENT_ID are set; the provider takes one kind",
        ),
        (
            {"TAILSCALE_OAUTH_CLIENT_ID": "i", "TAILSCALE_TAILNET": "t"},
            "TAILSCALE_OAUTH_CLIENT_ID is set but TAILSCALE_OAUTH_CLIENT_SECRET is not",
        ),
        (
            {},
            "neither TAILSCALE_OAUTH_CLIENT_ID + TAILSCALE_OAUTH_CLIENT_SECRET nor TAILSCALE_API_KEY is set; "
            "TAILSCALE_TAILNET is not set",
        ),
        ({"TAILSCALE_API_KEY": "k"}, "TAILSCALE_TAILNET is not set"),
    ],
)
def test_credentials(environ: dict[str, str], problem: str) -> None:
    assert pulumi_cli.credential_problem(environ) == problem


def test_passphrase(tmp_path: Path) -> None:
    assert pulumi_cli.passphrase_problem({"PULUMI_CONFIG_PASSPHRASE": ""}) == ""
    assert (
        pulumi_cli.passphrase_problem({}) == "neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set"
    )
    missing = tmp_path / "nope"
    assert pulumi_cli.passphrase_problem({"PULUMI_CONFIG_PASSPHRASE_FILE": str(missing)}) == (
        f"PULUMI_CONFIG_PASSPHRASE_FILE names {missing}, which does not exist"
    )
    missing.write_text("x")
    assert pulumi_cli.passphrase_problem({"PULUMI_CONFIG_PASSPHRASE_FILE": str(missing)}) == ""
