"""Tasks of the hosts layer: preview, provision, run, status.

Thin adapters: they gather data (ansible-playbook, ansible-inventory, one fabric connection),
hand it to the pure functions in callback_parse / inventory / status, and print through console.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, shell
from blumeops_tasks import plan as plan_model
from blumeops_tasks import preflight as runner
from blumeops_tasks.config import setting
from blumeops_tasks.hosts import callback_parse, checks
from blumeops_tasks.hosts.inventory import (
    Inventory,
    ProjectError,
    SshTarget,
    play_patterns,
    play_roles,
    playbook_for,
)
from blumeops_tasks.hosts.project import (
    Project,
    ansible_env,
    error_line,
    load_inventory,
    playbook_command,
    project,
    source_files,
)
from blumeops_tasks.plan import LayerPlan
from blumeops_tasks.tasking import task

if TYPE_CHECKING:
    from fabric import Connection

NAME = "hosts"
HELP_HOST = "the host whose playbook to run (playbooks/HOST.yml); default: every host (playbooks/site.yml)"
HELP_TAGS = "only tasks with these tags, comma-separated (e.g. caddy)"
HELP_LIMIT = "only these inventory hosts (an Ansible pattern)"
HELP_INVENTORY = "inventory path (default: config blumeops.hosts.inventory)"


# -- shared steps ----------------------------------------------------------------------------------


@contextmanager
def _results_file() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="blumeops-ansible-"))
    try:
        yield directory / "results.json"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _selection(c: Context, host: str | None, inventory: str | None) -> tuple[Project, Path]:
    p = project(c, inventory)
    try:
        return p, playbook_for(p.playbooks, host, p.default_playbook)
    except ProjectError as exc:
        console.fail(str(exc))


def _targets(p: Project, inv: Inventory, playbook: Path, limit: str | None) -> list[str]:
    hosts = inv.targets(play_patterns(playbook), limit)
    if not hosts:
        console.fail(
            f"No inventory host matches {p.rel(playbook)}"
            + (f" with --limit {limit}" if limit else "")
            + f" (inventory {p.rel(p.inventory)} has: {', '.join(inv.hosts) or 'no hosts'})."
        )
    return hosts


def syntax_error(c: Context, p: Project, playbook: Path) -> str | None:
    """None when the playbook passes --syntax-check, else one sentence.

    A pass is cached, keyed by every file the check reads; a failure is always re-checked.
    """
    from blumeops_tasks.hosts import cache

    command = playbook_command(p, playbook, mode="syntax")
    key = cache.fingerprint(source_files(p), extra=[command])
    if p.cache_dir is not None and cache.get(p.cache_dir, f"syntax-{playbook.stem}", key) is not None:
        return None
    result = shell.run(c, command, env=ansible_env(p), hide=True, warn=True)
    if result.exited == 0:
        if p.cache_dir is not None:
            cache.put(p.cache_dir, f"syntax-{playbook.stem}", key, {"passed": True})
        return None
    return f"{p.rel(playbook)} fails --syntax-check: {error_line(result.stderr or result.stdout)}"


def check_run(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None
) -> tuple[LayerPlan, dict[str, Any] | None]:
    """`ansible-playbook --check --diff` through the results callback, as the shared plan model."""
    with _results_file() as results:
        command = playbook_command(p, playbook, mode="check", tags=tags, limit=limit)
        with console.status(f"Previewing {p.rel(playbook)} (--check --diff)"):
            result = shell.run(c, command, env=ansible_env(p, results), hide=True, warn=True)
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
    """Syntax check, then check mode; any ansible error becomes the plan's error (exit 1)."""
    problem = syntax_error(c, p, playbook)
    if problem:
        return LayerPlan(NAME, error=problem)
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


# -- preview ---------------------------------------------------------------------------------------


@task(
    help={
        "host": HELP_HOST,
        "tags": HELP_TAGS,
        "limit": HELP_LIMIT,
        "inventory": HELP_INVENTORY,
        "json": "print the plan as JSON",
    }
)
def preview(  # noqa: PLR0917  (invoke passes flags as parameters)
    c: Context,
    host: str | None = None,
    tags: str | None = None,
    limit: str | None = None,
    inventory: str | None = None,
    json: bool = False,
) -> None:
    """Read-only: syntax check, then ansible-playbook --check --diff as a plan. Exit 0 none, 2 changes, 1 error."""
    p, playbook = _selection(c, host, inventory)
    plan = preview_plan(c, p, playbook, tags, limit)
    if json:
        console.print_json(plan_model.to_json([plan]))
    else:
        plan_model.render([plan])
        if plan.error:
            console.error(f"Preview failed: {plan.error}")
    code = plan_model.exit_code([plan])
    if code:
        raise Exit(code=code)


# -- provision -------------------------------------------------------------------------------------


def _preflight(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None
) -> tuple[Inventory, list[str]]:
    """Ansible version and syntax check run while the inventory loads; then each targeted host over
    SSH (concurrently, each with a timeout) and the roles' secrets.

    Any failure stops here, before any play runs, with one sentence per failed check.
    """
    from concurrent.futures import ThreadPoolExecutor

    def syntax() -> runner.Outcome:
        problem = syntax_error(c, p, playbook)
        return runner.failed(problem, "fix the playbook") if problem else runner.ok(f"{p.rel(playbook)} passes syntax")

    early = [
        runner.CheckSpec(NAME, "ansible-playbook", lambda: checks.ansible_version(c, p)),
        runner.CheckSpec(NAME, "syntax", syntax, timeout=60),
    ]
    timeout = float(setting(c, "preflight_timeout"))
    with console.status("Preflight"), ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(runner.run_checks, early, timeout)
        try:
            inv = load_inventory(c, p)
        except ProjectError as exc:
            console.fail(str(exc))
        hosts = _targets(p, inv, playbook, limit)
        roles = play_roles(playbook, tags)
        later = [s for s in checks.preflight_checks(c, p, inv, hosts, roles) if s.name != "ansible-playbook"]
        results = first.result() + runner.run_checks(later, default_timeout=timeout)
    failures = [r for r in results if r.status == "fail"]
    if failures:
        runner.render("Preflight", results)
        fixes = "; ".join(dict.fromkeys(r.fix for r in failures if r.fix))
        console.fail(f"Preflight failed: {'; '.join(r.detail for r in failures)} ({fixes}).")
    return inv, hosts


def _apply(
    c: Context, p: Project, playbook: Path, tags: str | None, limit: str | None
) -> tuple[int, dict[str, Any] | None]:
    with _results_file() as results:
        command = playbook_command(p, playbook, mode="apply", tags=tags, limit=limit)
        result = shell.run(c, command, env=ansible_env(p, results), hide=False, warn=True)
        return result.exited, callback_parse.load(results)


def _summary(doc: dict[str, Any] | None) -> None:
    rows = callback_parse.summary_rows(doc)
    if rows:
        console.table("Provisioned", ["host", *callback_parse.RECAP_KEYS, "result"], rows)


@task(
    help={
        "host": HELP_HOST,
        "tags": HELP_TAGS,
        "limit": HELP_LIMIT,
        "inventory": HELP_INVENTORY,
        "yes": "apply without asking (required when there is no terminal)",
        "allow_dirty": "apply even when the layer's files are uncommitted or not pushed (journaled as dirty)",
    }
)
def provision(  # noqa: PLR0917  (invoke passes flags as parameters)
    c: Context,
    host: str | None = None,
    tags: str | None = None,
    limit: str | None = None,
    inventory: str | None = None,
    yes: bool = False,
    allow_dirty: bool = False,
) -> None:
    """Bring hosts in line with the repo: preflight, preview, confirm (default No), apply, summary."""
    from blumeops_tasks.gitops.session import applying
    from blumeops_tasks.hosts.layer import LAYER

    p, playbook = _selection(c, host, inventory)
    _inv, hosts = _preflight(c, p, playbook, tags, limit)
    what = host or "every host"
    with applying(c, LAYER, task="hosts.provision", targets=hosts, allow_dirty=allow_dirty) as record:
        plan, _doc = check_run(c, p, playbook, tags, limit)
        record.set_plan(plan)
        plan_model.render([plan])
        if plan.error:
            console.fail(f"Preview failed, nothing applied: {plan.error}.")
        if not plan.has_changes:
            console.out(f"Nothing to change: {', '.join(hosts)} already in line with the repo.", style="green")
            return
        console.confirm(
            f"Apply {len(plan.changes)} changes to {', '.join(hosts)}?", yes=yes, action=f"provision {what}"
        )
        code, doc = _apply(c, p, playbook, tags, limit)
        _summary(doc)
        if code != 0:
            found = callback_parse.problems(doc or {})
            reason = "; ".join(problem.sentence() for problem in found) or "see ansible's output above"
            console.fail(f"ansible-playbook exited {code}: {reason}.", code=code)
        console.out(f"Provisioned {', '.join(hosts)}.", style="green")


# -- ad-hoc operations through fabric --------------------------------------------------------------


def _ssh_target(c: Context, host: str, inventory: str | None) -> tuple[Project, Inventory, SshTarget]:
    p = project(c, inventory)
    try:
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


def _open(conn: Connection, target: SshTarget) -> None:
    try:
        conn.open()
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        console.fail(
            f"Cannot reach {target.name} ({target.where()}) over SSH: {detail}; "
            f"check the host is up and its key is in known_hosts and authorized."
        )


@task(
    help={
        "host": "inventory host to run on (required)",
        "cmd": "the shell command to run there (required)",
        "inventory": HELP_INVENTORY,
    }
)
def run(c: Context, host: str = "", cmd: str = "", inventory: str | None = None) -> None:
    """Run one shell command on a host over SSH (fabric), output streamed, exit code passed through."""
    from blumeops_tasks.console import _RedactingStream

    if not host or not cmd:
        console.fail("hosts.run needs --host=NAME and --cmd='COMMAND'.")
    p, _inv, target = _ssh_target(c, host, inventory)
    conn = connection(target, p.ssh_timeout)
    _open(conn, target)
    try:
        result = conn.run(
            cmd,
            warn=True,
            hide=False,
            pty=False,
            in_stream=False,
            out_stream=_RedactingStream(sys.stdout),
            err_stream=_RedactingStream(sys.stderr),
        )
    finally:
        conn.close()
    if result.exited != 0:
        raise Exit(code=result.exited)


@task(
    help={
        "host": "inventory host to probe (required)",
        "inventory": HELP_INVENTORY,
        "json": "print the verdicts as JSON",
    }
)
def status(c: Context, host: str = "", inventory: str | None = None, json: bool = False) -> None:
    """Are the services the host's roles manage running and answering on their ports? Exit 1 if not."""
    from blumeops_tasks.hosts import status as probing

    if not host:
        console.fail("hosts.status needs --host=NAME.")
    p, inv, target = _ssh_target(c, host, inventory)
    try:
        playbook = playbook_for(p.playbooks, host, p.default_playbook)
        probes = probing.probes(p.roles, play_roles(playbook), inv.hostvars.get(host, {}))
    except ProjectError as exc:
        console.fail(str(exc))
    conn = connection(target, p.ssh_timeout)
    _open(conn, target)
    try:
        result = conn.run(probing.script(probes, target.python or "python3"), hide=True, warn=True, in_stream=False)
    finally:
        conn.close()
    verdicts = probing.parse(probes, result.stdout)
    healthy = all(v.healthy for v in verdicts)
    if json:
        console.print_json({"host": host, "healthy": healthy, "services": [v.to_dict() for v in verdicts]})
    else:
        console.table(
            f"{host}: services", ["role", "service", "process", "ports", "files", "state"], probing.rows(verdicts)
        )
    if not healthy:
        raise Exit(code=1)
