"""The tailnet layer's checks: offline (`inv check`) and environment (`inv preflight`).

Offline: the policy parses as HuJSON; every tag is declared; every device is a host the inventory
knows; the lockout guard; the program under the SDK's mocks builds what the files declare.
Preflight: the pulumi CLI and its version; the backend; the stack; Tailscale credentials; the
passphrase for the local backend.

Verdicts are pure functions returning an `Outcome`; the `CheckSpec` builders only gather files,
settings and command results for them.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import shell
from blumeops_tasks.config import repo_path, setting
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, ok, skipped, warn
from blumeops_tasks.tailnet import pulumi_cli
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
CONFIG_NS = "blumeops-tailnet"
DEFAULT_INVENTORY = "inventory/hosts.yml"
INSTALL_HINT = "run `mise install` (mise.toml pins the pulumi CLI), or put pulumi on PATH"


# --- settings and files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    stack: str
    lockout: Lockout
    inventory: Path
    mock_timeout: float


def settings(c: Context) -> Settings:
    return Settings(
        project_dir=repo_path(c, setting(c, "tailnet.dir")),
        stack=str(setting(c, "tailnet.stack")),
        lockout=Lockout(
            operator=str(setting(c, "tailnet.operator")),
            indri=(str(setting(c, "tailnet.indri_tag")), str(setting(c, "tailnet.indri_host"))),
            ports=ports_from(setting(c, "tailnet.ports")),
            tailscale_ssh=bool(setting(c, "tailnet.tailscale_ssh")),
        ),
        inventory=repo_path(c, inventory_setting(c)),
        mock_timeout=float(setting(c, "tailnet.mock_timeout")),
    )


def inventory_setting(c: Context) -> str:
    """`blumeops.hosts.inventory` (the hosts layer's setting), or the conventional path."""
    try:
        return str(setting(c, "hosts.inventory"))
    except Exit:
        return DEFAULT_INVENTORY


def target(c: Context) -> pulumi_cli.Target:
    project_dir = repo_path(c, setting(c, "tailnet.dir"))
    return pulumi_cli.Target(
        tool=str(setting(c, "tailnet.pulumi")),
        project_dir=project_dir,
        stack=str(setting(c, "tailnet.stack")),
        backend_url=pulumi_cli.resolve_backend(
            str(setting(c, "tailnet.backend_url")),
            os.environ,
            pulumi_cli.read_project(project_dir),
            project_dir,
        ),
        python=str(setting(c, "tailnet.python")) or pulumi_cli.default_python(),
    )


@dataclass(frozen=True)
class Declared:
    """What the stack declares, read from its files."""

    policy_path: Path
    devices_path: Path
    devices: dict[str, list[str]]  # hostname -> tags
    key_tags: dict[str, list[str]]  # auth key name -> tags
    dns: dict[str, Any]


def declared(project_dir: Path, stack: str) -> Declared:
    import yaml

    config = pulumi_cli.stack_config(project_dir, stack)
    policy_path = project_dir / str(config.get(f"{CONFIG_NS}:policyFile", "policy.hujson"))
    devices_path = project_dir / str(config.get(f"{CONFIG_NS}:devicesFile", "devices.yaml"))
    data = yaml.safe_load(devices_path.read_text(encoding="utf-8")) or {}
    devices = {str(host): list((entry or {}).get("tags") or []) for host, entry in (data.get("devices") or {}).items()}
    keys = {str(name): list((entry or {}).get("tags") or []) for name, entry in (data.get("auth_keys") or {}).items()}
    return Declared(policy_path, devices_path, devices, keys, dict(config.get(f"{CONFIG_NS}:dns") or {}))


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


def syntax_outcome(text: str, source: str) -> Outcome:
    try:
        policy = parse_hujson(text, source)
    except PolicyError as exc:
        return failed(
            str(exc), "fix the HuJSON at that line and column (only comments and trailing commas extend JSON)"
        )
    return ok(f"{source} parses ({len(policy)} sections)")


def tags_outcome(policy: Mapping[str, Any], decl: Declared, source: str) -> Outcome:
    extra: dict[str, str] = {}
    for host, tags in decl.devices.items():
        for tag in tags:
            extra.setdefault(tag, f"{decl.devices_path.name} devices.{host}")
    for name, tags in decl.key_tags.items():
        for tag in tags:
            extra.setdefault(tag, f"{decl.devices_path.name} auth_keys.{name}")
    missing = undeclared_tags(policy, extra)
    if missing:
        return failed(
            f"undeclared tag{'s' if len(missing) > 1 else ''}: {'; '.join(missing)}",
            f"declare each in tagOwners in {source}, or stop using it",
        )
    return ok(f"every tag is declared in tagOwners ({len(policy.get('tagOwners') or {})} tags)")


def devices_outcome(devices: Sequence[str], hosts: set[str] | None, inventory: Path) -> Outcome:
    if hosts is None:
        return failed(
            f"inventory {_relative(inventory)} is missing, so the devices cannot be checked against the hosts",
            "add the Ansible inventory (hosts layer) or point blumeops.hosts.inventory at it",
        )
    unknown = sorted(set(devices) - hosts)
    if unknown:
        return failed(
            f"device{'s' if len(unknown) > 1 else ''} not in the inventory: {', '.join(unknown)}",
            f"use a host name from {_relative(inventory)} ({', '.join(sorted(hosts))}) or add the host there",
        )
    return ok(f"{len(devices)} devices, all in the inventory")


def lockout_outcome(policy: Mapping[str, Any], lockout: Lockout, source: str) -> Outcome:
    problems = lockout_problems(policy, lockout)
    if problems:
        return failed(
            "; ".join(problems),
            f"keep a test like {required_tests_snippet(lockout)} in {source} (and an ssh rule for the operator)",
        )
    ports = ", ".join(f"{port} ({name})" for port, name in lockout.ports.items())
    return ok(f"{lockout.operator} keeps {lockout.indri[0]} on {ports}")


GET_DEVICE = "tailscale:index/getDevice:getDevice"
TYPES = {
    "acl": "tailscale:index/acl:Acl",
    "tags": "tailscale:index/deviceTags:DeviceTags",
    "key": "tailscale:index/tailnetKey:TailnetKey",
    "nameservers": "tailscale:index/dnsNameservers:DnsNameservers",
    "searchPaths": "tailscale:index/dnsSearchPaths:DnsSearchPaths",
    "magicDns": "tailscale:index/dnsPreferences:DnsPreferences",
}
DNS_RESOURCES = {"nameservers": "nameservers", "searchPaths": "search-paths", "magicDns": "preferences"}


def expected_resources(
    decl: Declared, policy_text: str, node_id: Callable[[str], str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """(type, name) -> the inputs that must be exactly so, for everything the files declare."""
    expected: dict[tuple[str, str], dict[str, Any]] = {(TYPES["acl"], "policy"): {"acl": policy_text}}
    for host, tags in decl.devices.items():
        expected[(TYPES["tags"], host)] = {"deviceId": node_id(host), "tags": sorted(tags)}
    for name, tags in decl.key_tags.items():
        expected[(TYPES["key"], name)] = {"tags": tags} if tags else {}
    for key, name in DNS_RESOURCES.items():
        if key in decl.dns:
            expected[(TYPES[key], name)] = {key: decl.dns[key]}
    return expected


def mock_problems(report: Mapping[str, Any], expected: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[str]:
    """Differences between what the program built under mocks and what the files declare."""
    built = {(r["type"], r["name"]): r.get("inputs") or {} for r in report.get("resources") or []}
    problems = [f"missing {kind.rsplit(':', 1)[-1]} {name}" for kind, name in expected if (kind, name) not in built]
    problems += [f"unexpected {kind.rsplit(':', 1)[-1]} {name}" for kind, name in built if (kind, name) not in expected]
    for key, want in expected.items():
        got = built.get(key)
        if got is None:
            continue
        for field, value in want.items():
            if got.get(field) != value:
                shown, wanted = json.dumps(got.get(field)), json.dumps(value)
                problems.append(f"{key[0].rsplit(':', 1)[-1]} {key[1]}: {field} is {shown}, expected {wanted}")
    return problems


# --- check builders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """The stack's files, read once per run of the checks."""

    decl: Declared
    text: str
    policy: dict[str, Any] | None  # None when the policy does not parse
    syntax: Outcome


def load(conf: Settings) -> Loaded:
    decl = declared(conf.project_dir, conf.stack)
    text = decl.policy_path.read_text(encoding="utf-8")
    try:
        policy: dict[str, Any] | None = parse_hujson(text, decl.policy_path.name)
    except PolicyError:
        policy = None
    return Loaded(decl, text, policy, syntax_outcome(text, decl.policy_path.name))


def once(fn: Callable[[], Loaded]) -> Callable[[], Loaded]:
    """`fn` computed by the first check that asks (checks run concurrently), then shared."""
    lock = threading.Lock()
    box: list[Loaded] = []

    def get() -> Loaded:
        with lock:
            if not box:
                box.append(fn())
        return box[0]

    return get


def _needs_policy(loaded: Loaded, outcome: Callable[[dict[str, Any]], Outcome]) -> Outcome:
    if loaded.policy is None:
        return failed(f"{loaded.decl.policy_path.name} does not parse", "fix the syntax error first")
    return outcome(loaded.policy)


def policy_checks(c: Context, loaded: Callable[[], Loaded] | None = None) -> list[CheckSpec]:
    """The guard that runs before any pulumi command: syntax, tags, devices, lockout."""
    conf = settings(c)
    get = loaded or once(lambda: load(conf))

    def tags() -> Outcome:
        decl = get().decl
        return _needs_policy(get(), lambda policy: tags_outcome(policy, decl, decl.policy_path.name))

    def devices() -> Outcome:
        hosts = inventory_hosts(c, conf.inventory)
        if isinstance(hosts, Outcome):
            return hosts
        return devices_outcome(list(get().decl.devices), hosts, conf.inventory)

    def lockout() -> Outcome:
        name = get().decl.policy_path.name
        return _needs_policy(get(), lambda policy: lockout_outcome(policy, conf.lockout, name))

    return [
        CheckSpec(NAME, "policy syntax", lambda: get().syntax),
        CheckSpec(NAME, "tags declared", tags),
        CheckSpec(NAME, "devices known", devices),
        CheckSpec(NAME, "lockout guard", lockout),
    ]


def mock_check(c: Context, loaded: Callable[[], Loaded] | None = None) -> CheckSpec:
    conf = settings(c)
    get = loaded or once(lambda: load(conf))
    python = str(setting(c, "tailnet.python")) or pulumi_cli.default_python()

    def run() -> Outcome:
        from invoke.exceptions import CommandTimedOut

        from blumeops_tasks.tailnet.mock_runner import mock_node_id

        command = shlex.join(
            [python, "-m", "blumeops_tasks.tailnet.mock_runner", "--dir", str(conf.project_dir), "--stack", conf.stack]
        )
        try:
            result = pulumi_cli.capture(c, command, timeout=conf.mock_timeout)
        except CommandTimedOut:
            return failed(
                f"the program did not finish under mocks in {conf.mock_timeout:g}s",
                "look for a loop or a blocking call in pulumi/",
            )
        if result.exited:
            lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
            return failed(
                lines[-1] if lines else f"mock runner exited {result.exited}", "fix the program or the file it names"
            )
        report = json.loads(result.stdout)
        problems = mock_problems(report, expected_resources(get().decl, get().text, mock_node_id))
        if problems:
            return failed("; ".join(problems), "make pulumi/blumeops_tailnet.py build what the files declare")
        return ok(f"{len(report['resources'])} resources as declared")

    return CheckSpec(NAME, "program under mocks", run, timeout=conf.mock_timeout + 5)


def offline_checks(c: Context) -> list[CheckSpec]:
    conf = settings(c)
    loaded = once(lambda: load(conf))
    return [*policy_checks(c, loaded), mock_check(c, loaded)]


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
    if not shell.which(tgt.tool):
        return failed(f"cannot reach {tgt.backend_url} without the {tgt.tool} CLI", INSTALL_HINT)
    result = pulumi_cli.capture(c, pulumi_cli.whoami_command(tgt), pulumi_cli.env_for(tgt))
    if result.exited:
        return failed(
            f"backend {tgt.backend_url}: {pulumi_cli.exit_meaning(result.exited)}",
            "log in with `pulumi login` or fix PULUMI_ACCESS_TOKEN",
        )
    return ok(f"{tgt.backend_url} as {(result.stdout or '').strip()}")


def stack_outcome(c: Context, tgt: pulumi_cli.Target) -> Outcome:
    fix = "run `inv tailnet.init` to create it"
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


def credentials_outcome(environ: Mapping[str, str]) -> Outcome:
    problem = pulumi_cli.credential_problem(environ)
    if problem:
        return failed(problem, "set them in .env (see .env.example, section tailnet)")
    return ok(f"Tailscale {pulumi_cli.credential_kind(environ)} for tailnet {environ['TAILSCALE_TAILNET']}")


def passphrase_outcome(tgt: pulumi_cli.Target, environ: Mapping[str, str]) -> Outcome:
    config_file = tgt.project_dir / f"Pulumi.{tgt.stack}.yaml"
    provider = ""
    if config_file.is_file():
        import yaml

        provider = str((yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}).get("secretsprovider", ""))
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
        CheckSpec(NAME, "credentials", lambda: credentials_outcome(os.environ)),
        CheckSpec(NAME, "passphrase", lambda: passphrase_outcome(tgt, os.environ)),
    ]
