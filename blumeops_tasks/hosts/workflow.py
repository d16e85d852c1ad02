"""The hosts layer's steps: selection, preflight, check-mode preview, apply, fabric connections.

Shared by the `hosts` tasks and by `inv plan`; imported inside the tasks, never at `inv --list` time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context

from blumeops_tasks import console, shell
from blumeops_tasks import preflight as runner
from blumeops_tasks.config import setting
from blumeops_tasks.hosts import ask, callback_parse, checks, house_rules, vault
from blumeops_tasks.hosts.inventory import Inventory, ProjectError, SshTarget, playbook_for
from blumeops_tasks.hosts.project import Project, ansible_env, error_line, load_inventory, playbook_command, project
from blumeops_tasks.plan import LayerPlan

if TYPE_CHECKING:
    from fabric import Connection

NAME = "hosts"


@contextmanager
def results_file() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="blumeops-ansible-"))
    try:
        yield directory / "results.json"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def selection(c: Context, host: str | None, inventory: str | None) -> tuple[Project, Path]:
    p = project(c, inventory)
    try:
        return p, playbook_for(p.playbooks, host, p.default_playbook)
    except ProjectError as exc:
        console.fail(str(exc))


@dataclass(frozen=True)
class Selection:
    """What a run of a playbook with --tags/--limit touches, as Ansible lists it."""

    hosts: list[str]
    roles: list[str]


def selected(c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None) -> Selection:
    """Ask Ansible which hosts and roles the run selects; a playbook or inventory Ansible cannot read,
    a --limit that leaves no host, or a --tags that no task carries is a ProjectError (one sentence).
    Before any run: the project's Ansible Vault values become secrets (hosts/vault.py)."""
    vault.protect(c, p)
    plays = ask.listing(c, p, [playbook], limit=limit)
    hosts = ask.touched_hosts(plays)
    if not hosts:
        raise ProjectError(
            f"No inventory host matches {p.rel(playbook)}" + (f" with --limit {limit}" if limit else "") + "."
        )
    known_roles = set(house_rules.roles(p.roles))
    if not tags:
        return Selection(hosts, list(dict.fromkeys(r for play in plays for r in play.roles(known_roles))))
    unknown = ask.unknown_tags(tags, ask.all_tags(plays))
    if unknown:
        known = ", ".join(sorted(ask.all_tags(plays) - {"always"})) or "none"
        raise ProjectError(
            f"--tags {','.join(unknown)} matches no task in {p.rel(playbook)} (its tags: {known}); "
            f"nothing would run, so nothing is previewed or applied."
        )
    # The roles whose tasks the tags select (not those that only run their `always` tasks).
    tagged = ask.listing(c, p, [playbook], limit=limit, tags=tags, skip_tags="always")
    return Selection(hosts, list(dict.fromkeys(r for play in tagged for r in play.roles(known_roles))))


def check_run(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None
) -> tuple[LayerPlan, dict[str, Any] | None]:
    """`ansible-playbook --check --diff` through the results callback, as the shared plan model."""
    with console.status(f"Previewing {p.rel(playbook)} (--check --diff)"):
        return _check_run(c, p, playbook, tags, limit)


def _check_run(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None
) -> tuple[LayerPlan, dict[str, Any] | None]:
    with results_file() as results:
        command = playbook_command(p, playbook, mode="check", tags=tags, limit=limit)
        result = shell.run(c, command, env=ansible_env(c, p, results), hide=True, warn=True)
        doc = callback_parse.load(results)
    note = (
        f"{p.rel(playbook)} --check --diff"
        + (f" --tags {tags}" if tags else "")
        + (f" --limit {limit}" if limit else "")
    )
    plan = callback_parse.to_plan(doc, NAME, note=note)
    if result.exited != 0 and not plan.error:
        plan = LayerPlan(
            NAME,
            plan.targets,
            error=f"ansible-playbook --check exited {result.exited}: {error_line(result.stderr or result.stdout)}",
            note=note,
        )
    return plan, doc


def preview_plan(
    c: Context, p: Project, playbook: Path, tags: str | None = None, limit: str | None = None
) -> LayerPlan:
    """Ansible's listing (the playbook parses, --limit and --tags select something), then check mode;
    any ansible error becomes the plan's error (exit 1)."""
    try:
        selected(c, p, playbook, tags, limit)
    except ProjectError as exc:
        return LayerPlan(NAME, error=str(exc))
    plan, _doc = check_run(c, p, playbook, tags, limit)
    return plan


def layer_plan(c: Context) -> LayerPlan:
    """The layer's read-only preview for `inv plan`: every host's playbook (site.yml)."""
    p = project(c)
    try:
        playbook = playbook_for(p.playbooks, None, p.default_playbook)
    except ProjectError as exc:
        return LayerPlan(NAME, error=str(exc))
    return preview_plan(c, p, playbook)


def preflight_beside_preview(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None, *, host: str | None = None
) -> tuple[list[str], LayerPlan]:
    """The preflight and the check-mode preview at once, for an apply (inside its lock, from its
    snapshot): the preview changes nothing, so only the apply has to wait for the preflight, and
    Ansible's listing of the run and the SSH round trip take no time of their own. A failed preflight
    stops the preview (its process group) and is the apply's one sentence; a passed one returns the
    hosts Ansible lists and the preview's plan."""
    from concurrent.futures import ThreadPoolExecutor

    previewed = threading.Event()

    def checks() -> list[str]:
        try:
            return preflight(c, p, playbook, tags, limit, host=host)
        except BaseException:
            _stop_tools_until(previewed)
            raise

    status = console.status(f"Preflight, and previewing {p.rel(playbook)} (--check --diff)")
    with status, ThreadPoolExecutor(max_workers=1) as pool:
        checked = pool.submit(checks)
        try:
            plan, _doc = _check_run(c, p, playbook, tags, limit)
        finally:
            previewed.set()
        hosts = checked.result()
    return hosts, plan


def _stop_tools_until(done: threading.Event) -> None:
    """SIGTERM to every tool group the apply's tracker knows (the preflight's own have ended), until
    `done` (the preview has returned)."""
    tracker = shell.tracker()
    while True:
        for pgid in tracker.groups() if tracker else ():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
        if done.wait(0.1):
            return


def preflight(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None, *, host: str | None
) -> list[str]:
    """Ansible's version, strategy and requirements checked, and its inventory read, while Ansible lists
    what the run selects; then each selected host over SSH (concurrently, each with a timeout) and the
    selected roles' secrets. A `host` named on the command line is reached over SSH while Ansible still
    lists the run (its row is kept only if the listing selects it).

    Any failure stops here, before anything changes, with one sentence per failed check. Returns the hosts.
    """
    from concurrent.futures import ThreadPoolExecutor

    timeout = float(setting(c, "preflight_timeout"))
    with ThreadPoolExecutor(max_workers=3) as pool:
        early = [s for s in checks.preflight_checks(c, p, None, [], []) if s.name != "secrets"]
        first = pool.submit(runner.run_checks, early, timeout)
        # Ansible's inventory (the SSH targets) is read while Ansible lists the run: after an edit of
        # the inventory both are asked again, and neither waits for the other.
        inventory = pool.submit(load_inventory, c, p)
        named = pool.submit(_reach_named, c, p, inventory, host, timeout)
        try:
            chosen = selected(c, p, playbook, tags, limit)
            inv = inventory.result()
        except ProjectError as exc:
            first.result()
            inventory.exception()
            named.result()
            console.fail(str(exc))
        reached = [r for r in named.result() if r.name in {f"ssh {h}" for h in chosen.hosts}]
        later = [
            s
            for s in checks.preflight_checks(c, p, inv, chosen.hosts, chosen.roles)
            if (s.name.startswith("ssh ") and s.name not in {r.name for r in reached}) or s.name == "secrets"
        ]
        results = first.result() + reached + runner.run_checks(later, default_timeout=timeout)
    failures = [r for r in results if r.status == "fail"]
    if failures:
        runner.render("Preflight", results)
        fixes = "; ".join(dict.fromkeys(r.fix for r in failures if r.fix))
        console.fail(f"Preflight failed: {'; '.join(r.detail for r in failures)} ({fixes}).")
    return chosen.hosts


def _reach_named(
    c: Context, p: Project, inventory: Future[Inventory], host: str | None, timeout: float
) -> list[runner.CheckResult]:
    """The SSH row of the host named on the command line, once the inventory is read (none when it
    is not there: the listing then says what is wrong)."""
    if not host:
        return []
    try:
        inv = inventory.result()
    except ProjectError:
        return []
    if host not in inv.hosts:
        return []
    specs = [s for s in checks.preflight_checks(c, p, inv, [host], []) if s.name.startswith("ssh ")]
    return runner.run_checks(specs, default_timeout=timeout)


def apply_playbook(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None
) -> tuple[int, dict[str, Any] | None]:
    with results_file() as results:
        command = playbook_command(p, playbook, mode="apply", tags=tags, limit=limit)
        result = shell.run(c, command, env=ansible_env(c, p, results), hide=False, warn=True)
        return result.exited, callback_parse.load(results)


def summary(doc: dict[str, Any] | None) -> None:
    rows = callback_parse.summary_rows(doc)
    if rows:
        console.table("Provisioned", ["host", *callback_parse.RECAP_KEYS, "result"], rows)


def ssh_target(c: Context, host: str, inventory: str | None) -> tuple[Project, Inventory, SshTarget]:
    p = project(c, inventory)
    try:
        vault.protect(c, p)  # a command's output may hold a vault value (a file a run wrote)
        inv = load_inventory(c, p)
        return p, inv, inv.ssh_target(host)
    except ProjectError as exc:
        console.fail(str(exc))


def connection(target: SshTarget, timeout: float) -> Connection:
    """A fabric Connection with the inventory's address, port, user, key and known_hosts file.

    Unknown host keys are rejected, as Ansible's ssh does with host_key_checking.
    """
    from fabric import Connection
    from paramiko import RejectPolicy

    kwargs: dict[str, Any] = {"look_for_keys": not target.key_file, "allow_agent": not target.key_file}
    if target.key_file:
        kwargs["key_filename"] = str(Path(target.key_file).expanduser())
    conn = Connection(
        host=target.address,
        user=target.user or None,
        port=target.port,
        connect_timeout=timeout,
        connect_kwargs=kwargs,
    )
    known = Path(target.known_hosts_file()).expanduser() if target.known_hosts_file() else None
    if known and known.is_file():
        conn.client.load_host_keys(str(known))
    conn.client.set_missing_host_key_policy(RejectPolicy())
    return conn


def open_connection(conn: Connection, target: SshTarget) -> None:
    try:
        conn.open()
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        console.fail(
            f"Cannot reach {target.name} ({target.where()}) over SSH: {detail}; "
            f"check the host is up and its key is in known_hosts and authorized."
        )
