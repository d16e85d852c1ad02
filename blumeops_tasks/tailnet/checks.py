"""The tailnet layer's checks: offline (`inv check`) and environment (`inv preflight`).

Offline: the policy parses (json5 reads HuJSON) and the program runs under the SDK's mocks — the
tools' own meaning, failures when they break. From the program's report and the policy, our own
conventions, house rules (warnings unless `blumeops.lint.strict`): every tag is declared, every
device the program looks up is a host the inventory knows, the lockout guard.
Preflight: the pulumi CLI and its version; the backend; the stack; Tailscale credentials; the
passphrase for the local backend.

Verdicts are pure functions returning an `Outcome`; the `CheckSpec` builders only gather files,
settings and command results for them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import shell
from blumeops_tasks.config import lint_strict, repo_path, setting, source_path, state_dir
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, house_rule, ok, skipped, warn
from blumeops_tasks.tailnet import program_check, pulumi_cli
from blumeops_tasks.tailnet.policy import (
    Lockout,
    PolicyError,
    lockout_problems,
    parse_hujson,
    ports_from,
    required_tests_snippet,
    undeclared_tags,
)

NAME = "tailnet"
DEFAULT_INVENTORY = "inventory/hosts.yml"
INSTALL_HINT = "run `mise install` (mise.toml pins the pulumi CLI), or put pulumi on PATH"
T = TypeVar("T")


# --- settings and files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    stack: str  # "" when neither configured nor the only stack file beside the program
    policy_path: Path
    lockout: Lockout
    inventory: Path
    mock_timeout: float
    python: str
    strict: bool  # house rules fail instead of warning
    cache_dir: Path


def settings(c: Context) -> Settings:
    project_dir = source_path(c, setting(c, "tailnet.dir"))
    return Settings(
        project_dir=project_dir,
        stack=pulumi_cli.resolve_stack(str(setting(c, "tailnet.stack")), project_dir),
        policy_path=project_dir / str(setting(c, "tailnet.policy")),
        lockout=Lockout(
            operator=str(setting(c, "tailnet.operator")),
            indri=(str(setting(c, "tailnet.indri_tag")), str(setting(c, "tailnet.indri_host"))),
            ports=ports_from(setting(c, "tailnet.ports")),
            tailscale_ssh=bool(setting(c, "tailnet.tailscale_ssh")),
        ),
        inventory=source_path(c, inventory_setting(c)),
        mock_timeout=float(setting(c, "tailnet.mock_timeout")),
        python=str(setting(c, "tailnet.python")) or pulumi_cli.default_python(),
        strict=lint_strict(c),
        cache_dir=state_dir(c) / "cache" / NAME,
    )


def inventory_setting(c: Context) -> str:
    """`blumeops.hosts.inventory` (the hosts layer's setting), or the conventional path."""
    try:
        return str(setting(c, "hosts.inventory"))
    except Exit:
        return DEFAULT_INVENTORY


def target(c: Context) -> pulumi_cli.Target:
    """The program from `source_path` (a snapshot of the commit while an apply runs from one); a relative
    file:// backend from the clone's program directory, since the state is the clone's, not the commit's."""
    project_dir = source_path(c, setting(c, "tailnet.dir"))
    return pulumi_cli.Target(
        tool=str(setting(c, "tailnet.pulumi")),
        project_dir=project_dir,
        stack=pulumi_cli.resolve_stack(str(setting(c, "tailnet.stack")), project_dir),
        backend_url=pulumi_cli.resolve_backend(
            str(setting(c, "tailnet.backend_url")),
            os.environ,
            pulumi_cli.read_project(project_dir),
            repo_path(c, setting(c, "tailnet.dir")),
        ),
        python=str(setting(c, "tailnet.python")) or pulumi_cli.default_python(),
    )


def declared_stacks(c: Context) -> list[str]:
    """The stack the layer applies (the layer's target in `inv pending`); none when none is chosen."""
    if not source_path(c, setting(c, "tailnet.dir")).is_dir():
        return []
    stack = target(c).stack
    return [stack] if stack else []


def inventory_hosts(c: Context, path: Path) -> set[str] | Outcome | None:
    """Every host of the Ansible inventory at `path`, as `ansible-inventory --list` reports it (the
    hosts layer's cached reader); None when it is missing; an Outcome when Ansible cannot answer."""
    if not path.exists():
        return None
    from invoke.context import Context as Runner

    from blumeops_tasks.hosts.inventory import ProjectError
    from blumeops_tasks.hosts.project import load_inventory, project

    p = project(c, str(path))
    if not shell.which(p.ansible_inventory):
        return skipped(
            f"{p.ansible_inventory} is not installed, so the devices cannot be checked against the inventory",
            "pip install -e . (ansible-core)",
        )
    # A read-only local query: always run for real (a MockContext here stands in for pulumi's commands).
    try:
        return set(load_inventory(Runner(config=c.config), p).hosts)
    except ProjectError as exc:
        return failed(str(exc), "fix the inventory (hosts layer) so the devices can be checked against it")


# --- pure verdicts --------------------------------------------------------------------------------


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Policy:
    """The policy file as read once per run of the checks."""

    path: Path
    data: dict[str, Any] | None  # None when the file is missing or does not parse
    syntax: Outcome


def read_policy(path: Path) -> Policy:
    if not path.is_file():
        return Policy(
            path,
            None,
            skipped(
                f"no {path.name} beside the program, so there is no policy to check",
                "set blumeops.tailnet.policy to the policy file the program sends",
            ),
        )
    try:
        data = parse_hujson(path.read_text(encoding="utf-8"), path.name)
    except PolicyError as exc:
        return Policy(path, None, failed(str(exc), "fix the HuJSON at that line and column"))
    except (OSError, UnicodeDecodeError) as exc:
        return Policy(path, None, failed(f"cannot read {path.name}: {exc}", "fix the file"))
    return Policy(path, data, ok(f"{path.name} parses ({len(data)} sections)"))


def tags_outcome(policy: Mapping[str, Any], carried: Mapping[str, str], source: str, strict: bool) -> Outcome:
    missing = undeclared_tags(policy, carried)
    if missing:
        return house_rule(
            strict,
            f"undeclared tag{'s' if len(missing) > 1 else ''}: {'; '.join(missing)}",
            f"declare each in tagOwners in {source} (Tailscale refuses an undeclared tag), or stop using it",
        )
    return ok(f"every tag is declared in tagOwners ({len(policy.get('tagOwners') or {})} tags)")


def devices_outcome(devices: Sequence[str], hosts: set[str] | None, inventory: Path, strict: bool) -> Outcome:
    if hosts is None:
        return skipped(
            f"no inventory at {_relative(inventory)}, so the devices are not checked against the hosts",
            "point blumeops.hosts.inventory at the Ansible inventory",
        )
    if not devices:
        return ok("the program looks up no device by name (get_device)")
    unknown = sorted(set(devices) - hosts)
    if unknown:
        return house_rule(
            strict,
            f"device{'s' if len(unknown) > 1 else ''} not in the inventory: {', '.join(unknown)}",
            f"use a host name from {_relative(inventory)} ({', '.join(sorted(hosts))}) or add the host there",
        )
    return ok(f"{len(devices)} devices, all in the inventory")


def lockout_outcome(policy: Mapping[str, Any], lockout: Lockout, source: str, strict: bool) -> Outcome:
    if json.dumps(lockout.operator, ensure_ascii=False) not in json.dumps(policy, ensure_ascii=False):
        return house_rule(
            strict,
            f"the operator {lockout.operator} appears nowhere in {source}, so the lockout guard cannot hold",
            "set blumeops.tailnet.operator (and indri_tag, ports) to your Tailscale login and the host to keep",
        )
    problems = lockout_problems(policy, lockout)
    if problems:  # a guardrail, not taste: applying this policy would lock the operator out
        return failed(
            "; ".join(problems),
            f"keep a test like {required_tests_snippet(lockout)} in {source} (and an ssh rule for the operator)",
        )
    ports = ", ".join(f"{port} ({name})" for port, name in lockout.ports.items())
    return ok(f"{lockout.operator} keeps {lockout.indri[0]} on {ports}")


# --- check builders ---------------------------------------------------------------------------------


def once(fn: Callable[[], T]) -> Callable[[], T]:
    """`fn` computed by the first check that asks (checks run concurrently), then shared."""
    lock = threading.Lock()
    box: list[T] = []

    def get() -> T:
        with lock:
            if not box:
                box.append(fn())
        return box[0]

    return get


def offline_checks(c: Context) -> list[CheckSpec]:
    """`inv check`, and the guard before every preview and apply: the policy parses, the program runs
    under mocks (both failures when not), then the house rules on what they tell."""
    conf = settings(c)
    policy = once(lambda: read_policy(conf.policy_path))
    mock = once(
        lambda: program_check.run(
            conf.project_dir, conf.stack or "check", conf.python, conf.mock_timeout, conf.cache_dir
        )
    )
    source = conf.policy_path.name
    waits = conf.mock_timeout + 5  # the rows that read the program's report wait for it

    def needs_policy() -> Outcome | None:
        if policy().data is None:
            return skipped(f"{source} is not available (see policy syntax)")
        return None

    def tags() -> Outcome:
        report = mock().report
        outcome = needs_policy() or tags_outcome(
            policy().data or {}, program_check.tags_carried(report or {}), source, conf.strict
        )
        if report is None and outcome.status == "ok":  # say what was not read
            return ok(f"{outcome.detail}; the program's own tags were not read (see program under mocks)")
        return outcome

    def devices() -> Outcome:
        report = mock().report
        if report is None:
            return skipped("the program did not run under mocks (see program under mocks)")
        hosts = inventory_hosts(c, conf.inventory)
        if isinstance(hosts, Outcome):
            return hosts
        return devices_outcome(program_check.looked_up_devices(report), hosts, conf.inventory, conf.strict)

    def lockout() -> Outcome:
        return needs_policy() or lockout_outcome(policy().data or {}, conf.lockout, source, conf.strict)

    return [
        CheckSpec(NAME, "policy syntax", lambda: policy().syntax),
        CheckSpec(NAME, "program under mocks", lambda: mock().outcome, timeout=waits),
        CheckSpec(NAME, "tags declared", tags, timeout=waits),
        CheckSpec(NAME, "devices known", devices, timeout=waits),
        CheckSpec(NAME, "lockout guard", lockout),
    ]


# --- preflight --------------------------------------------------------------------------------------


def cli_outcome(c: Context, tgt: pulumi_cli.Target) -> Outcome:
    if not shell.which(tgt.tool):
        return failed(f"the {tgt.tool} CLI is not on PATH", INSTALL_HINT)
    result = pulumi_cli.capture(c, pulumi_cli.version_command(tgt), pulumi_cli.env_for(tgt))
    version = pulumi_cli.parse_version(result.stdout or "")
    if result.exited or version is None:
        return failed(f"`{tgt.tool} version` failed (exit {result.exited})", INSTALL_HINT)
    shown = ".".join(map(str, version))
    if version < pulumi_cli.EXIT_CODES_SINCE:
        return warn(f"pulumi {shown}: every error exits 255", "upgrade to 3.226 or later for meaningful exit codes")
    return ok(f"pulumi {shown}")


def backend_outcome(c: Context, tgt: pulumi_cli.Target) -> Outcome:
    path = pulumi_cli.file_backend_path(tgt.backend_url, tgt.project_dir)
    if path is not None:
        if path.is_dir() and os.access(path, os.W_OK):
            return ok(f"local backend {path}")
        if path.is_dir():
            return failed(f"local backend {path} is not writable", "fix its permissions")
        return failed(f"local backend {path} does not exist", "run `inv tailnet.init` to create it and the stack")
    backend = tgt.backend_url or "the backend of `pulumi login`"
    if not shell.which(tgt.tool):
        return failed(f"cannot reach {backend} without the {tgt.tool} CLI", INSTALL_HINT)
    result = pulumi_cli.capture(c, pulumi_cli.whoami_command(tgt), pulumi_cli.env_for(tgt))
    if result.exited:
        return failed(
            f"{'backend ' if tgt.backend_url else ''}{backend}: {pulumi_cli.exit_meaning(result.exited)}",
            "log in with `pulumi login` or fix PULUMI_ACCESS_TOKEN",
        )
    return ok(f"{backend} as {(result.stdout or '').strip()}")


def no_stack_problem(project_dir: Path) -> str:
    """Why no stack was chosen, for a setting that is empty (one sentence without the fix)."""
    stacks = pulumi_cli.stack_files(project_dir)
    found = f"several stack files ({', '.join(stacks)})" if stacks else "no Pulumi.<stack>.yaml"
    return f"blumeops.tailnet.stack is empty and {_relative(project_dir)} has {found}"


def stack_outcome(c: Context, tgt: pulumi_cli.Target) -> Outcome:
    fix = "run `inv tailnet.init` to create it"
    if not tgt.stack:
        return failed(no_stack_problem(tgt.project_dir), "set blumeops.tailnet.stack in invoke.yaml")
    path = pulumi_cli.file_backend_path(tgt.backend_url, tgt.project_dir)
    if path is not None:
        project = pulumi_cli.read_project(tgt.project_dir).name
        if any(f.is_file() for f in pulumi_cli.stack_state_files(path, project, tgt.stack)):
            return ok(f"stack {tgt.stack} exists in {path}")
        return failed(f"stack {tgt.stack} not found in {path}", fix)
    if not shell.which(tgt.tool):
        return failed(f"cannot list stacks without the {tgt.tool} CLI", INSTALL_HINT)
    result = pulumi_cli.capture(c, pulumi_cli.stack_ls_command(tgt), pulumi_cli.env_for(tgt))
    if result.exited:
        return failed(f"`pulumi stack ls` failed: {pulumi_cli.exit_meaning(result.exited)}", "check the backend login")
    names = {str(entry.get("name", "")).rsplit("/", 1)[-1] for entry in json.loads(result.stdout or "[]")}
    return ok(f"stack {tgt.stack} exists") if tgt.stack in names else failed(f"stack {tgt.stack} not found", fix)


def credentials_outcome(environ: Mapping[str, str], stack: Mapping[str, Any] | None = None) -> Outcome:
    """Tailscale credentials from the environment or the stack's config (`tailscale:apiKey`, ...);
    a stack that imports ESC environments gets them from there, which is not checkable here."""
    stack = stack or {}
    if stack.get("environment"):
        return skipped("the stack imports Pulumi ESC environments: the credentials come from there")
    config = stack.get("config") if isinstance(stack.get("config"), Mapping) else {}
    found = pulumi_cli.credential_sources(environ, config or {})
    problem = pulumi_cli.credential_problem(found)
    if problem:
        return failed(problem, "set them in .env (see .env.example, section tailnet) or the stack's tailscale:* config")
    return ok(f"Tailscale {pulumi_cli.credential_kind(found)} for tailnet {found['TAILSCALE_TAILNET']}")


def passphrase_outcome(tgt: pulumi_cli.Target, environ: Mapping[str, str]) -> Outcome:
    provider = str(pulumi_cli.stack_file(tgt.project_dir, tgt.stack).get("secretsprovider", ""))
    local = pulumi_cli.file_backend_path(tgt.backend_url, tgt.project_dir) is not None
    if not (provider.startswith("passphrase") or (local and not provider)):
        return ok(f"secrets provider {provider or 'of the backend'}: no passphrase needed")
    problem = pulumi_cli.passphrase_problem(environ)
    if problem:
        return failed(
            problem, "set PULUMI_CONFIG_PASSPHRASE in .env (empty is allowed) or PULUMI_CONFIG_PASSPHRASE_FILE"
        )
    return ok("passphrase set (value hidden)")


def preflight_checks(c: Context) -> list[CheckSpec]:
    tgt = target(c)
    return [
        CheckSpec(NAME, "pulumi CLI", lambda: cli_outcome(c, tgt)),
        CheckSpec(NAME, "backend", lambda: backend_outcome(c, tgt)),
        CheckSpec(NAME, "stack", lambda: stack_outcome(c, tgt)),
        CheckSpec(
            NAME,
            "credentials",
            lambda: credentials_outcome(os.environ, pulumi_cli.stack_file(tgt.project_dir, tgt.stack)),
        ),
        CheckSpec(NAME, "passphrase", lambda: passphrase_outcome(tgt, os.environ)),
    ]
