"""Checks of the hosts layer: offline (`inv check`) and of the operator's environment (preflight)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from invoke.context import Context

from blumeops_tasks import shell
from blumeops_tasks.hosts import render
from blumeops_tasks.hosts.inventory import Inventory, ProjectError, SshTarget, playbooks, required_env, ssh_command
from blumeops_tasks.hosts.project import (
    Project,
    ansible_control_path,
    ansible_env,
    ansible_strategy,
    error_line,
    last_line,
    load_inventory,
    playbook_command,
)
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, ok, warn

NAME = "hosts"


# -- offline -------------------------------------------------------------------------------------


def _inventory_parses(c: Context, p: Project) -> Outcome:
    inv = load_inventory(c, p)
    return ok(f"{p.rel(p.inventory)}: {len(inv.hosts)} hosts ({', '.join(inv.hosts)})")


def _syntax(c: Context, p: Project, playbook: Path) -> Outcome:
    result = shell.run(c, playbook_command(p, playbook, mode="syntax"), env=ansible_env(p), hide=True, warn=True)
    if result.exited != 0:
        return failed(
            f"{p.rel(playbook)} fails --syntax-check: {error_line(result.stderr or result.stdout)}",
            f"fix {p.rel(playbook)} (ansible-playbook {p.rel(playbook)} --syntax-check shows the detail)",
        )
    return ok(f"{p.rel(playbook)} passes --syntax-check")


def _specs(p: Project) -> Outcome:
    problems = [m for role in render.roles(p.roles) for m in render.spec_mismatches(p.roles / role)]
    if problems:
        return failed("; ".join(problems), "keep meta/argument_specs.yml equal to defaults/main.yml")
    return ok(f"argument specs match defaults for {len(render.roles(p.roles))} roles")


def _templates(p: Project) -> Outcome:
    problems = [
        m
        for role in render.roles(p.roles)
        for platform in render.PLATFORM_FACTS
        for m in render.template_problems(p.roles / role, platform)
    ]
    if problems:
        return failed("; ".join(problems), "fix the template it names")
    return ok(f"every template renders for {', '.join(render.PLATFORM_FACTS)} (plists parse)")


def offline_checks(c: Context, p: Project) -> list[CheckSpec]:
    specs = [
        CheckSpec(NAME, "inventory parses", lambda: _inventory_parses(c, p)),
        CheckSpec(NAME, "argument specs = defaults", lambda: _specs(p)),
        CheckSpec(NAME, "templates render", lambda: _templates(p)),
    ]
    for playbook in playbooks(p.playbooks):
        specs.append(CheckSpec(NAME, f"syntax {playbook.name}", lambda pb=playbook: _syntax(c, p, pb)))  # type: ignore[misc]
    return specs


# -- preflight -----------------------------------------------------------------------------------


def ansible_version(c: Context, p: Project) -> Outcome:
    """ansible-playbook on PATH and its version (cached per executable: path, size, mtime)."""
    from blumeops_tasks.hosts import cache

    executable = shell.which(p.ansible_playbook)
    if not executable:
        return failed(
            f"{p.ansible_playbook} is not installed", "pip install 'ansible-core>=2.19' (or pip install -e .)"
        )
    key = cache.fingerprint([Path(executable)])
    if p.cache_dir is not None and (version := cache.get(p.cache_dir, "ansible-version", key)):
        return ok(f"ansible-playbook (core {version})")
    result = shell.run(c, f"{p.ansible_playbook} --version", env=ansible_env(p), hide=True, warn=True)
    if result.exited != 0:
        return failed(f"{p.ansible_playbook} --version failed: {last_line(result.stderr)}", "reinstall ansible-core")
    match = re.search(r"core ([0-9.]+)", result.stdout)
    if p.cache_dir is not None and match:
        cache.put(p.cache_dir, "ansible-version", key, match.group(1))
    return ok(f"ansible-playbook (core {match.group(1) if match else '?'})")


MITOGEN_STRATEGY = "blumeops_mitogen"


def mitogen(strategy: str, version: str | None) -> Outcome:
    """Is the strategy in ansible.cfg getting Mitogen? Without it the run works, only slower.

    `version` is mitogen's version in this interpreter (the one `pip install -e .` put
    ansible-core and mitogen in), None when it is not installed.
    """
    if strategy != MITOGEN_STRATEGY:
        return ok(f"strategy {strategy} (Mitogen not used)")
    if version is None:
        return warn(
            f"mitogen is not installed: the {MITOGEN_STRATEGY} strategy falls back to plain free (slower)",
            "pip install -e . in the blumeops checkout",
        )
    return ok(f"mitogen {version} (strategy {strategy})")


def _mitogen(p: Project) -> Outcome:
    try:
        import mitogen as package  # its __init__ is a version tuple and little else (importlib.metadata costs 13 ms)
    except ImportError:
        version = None
    else:
        version = ".".join(str(part) for part in package.__version__)
    return mitogen(ansible_strategy(p), version)


def reach(c: Context, target: SshTarget, timeout: float, control_path: str = "") -> Outcome:
    """One SSH round trip to the host with Ansible's connection settings; no prompts, bounded time."""
    command = ssh_command(target, "true", timeout, control_path)
    result = shell.run(c, command, hide=True, warn=True, timeout=timeout + 2)
    if result.exited == 0:
        return ok(f"{target.where()} answers over SSH")
    reason = last_line(result.stderr) if result.stderr.strip() else f"ssh exit code {result.exited}"
    return failed(
        f"host {target.name} ({target.where()}) is unreachable over SSH: {reason}",
        f"check that {target.name} is up and on the tailnet, and that its key is authorized",
    )


def _reach_spec(c: Context, target: SshTarget, timeout: float, control_path: str) -> CheckSpec:
    def run() -> Outcome:
        try:
            return reach(c, target, timeout, control_path)
        except Exception as exc:  # invoke's CommandTimedOut and friends
            return failed(
                f"host {target.name} ({target.where()}) is unreachable over SSH: {type(exc).__name__}",
                f"check that {target.name} is up and on the tailnet",
            )

    return CheckSpec(NAME, f"ssh {target.name}", run, timeout=timeout + 4)


def _secrets(names: dict[str, list[str]]) -> Outcome:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        needs = "; ".join(f"{name} (for {', '.join(names[name])})" for name in missing)
        return failed(f"missing secrets: {needs}", "set them in the environment or in .env (see .env.example)")
    listed = ", ".join(names) if names else "none needed"
    return ok(f"secrets present: {listed}")


def preflight_checks(
    c: Context, p: Project, inv: Inventory | None, hosts: list[str], roles: list[str]
) -> list[CheckSpec]:
    """ansible present, each targeted host reachable (concurrently, each with a timeout), secrets present."""
    specs = [
        CheckSpec(NAME, "ansible-playbook", lambda: ansible_version(c, p)),
        CheckSpec(NAME, "mitogen", lambda: _mitogen(p)),
    ]
    if inv is not None:
        control_path = ansible_control_path(p)
        specs += [_reach_spec(c, inv.ssh_target(host), p.ssh_timeout, control_path) for host in hosts]
    needed = required_env(p.roles, roles)
    specs.append(CheckSpec(NAME, "secrets", lambda: _secrets(needed)))
    return specs


def inventory_or_failure(c: Context, p: Project) -> tuple[Inventory | None, CheckSpec | None]:
    try:
        return load_inventory(c, p), None
    except ProjectError as exc:
        message = str(exc)
        return None, CheckSpec(NAME, "inventory", lambda: failed(message, "fix the inventory"))
