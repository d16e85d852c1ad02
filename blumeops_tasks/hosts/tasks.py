"""Tasks of the hosts layer: preview, provision, and ad-hoc run/status through fabric.

Only the task definitions live here; their steps are in `workflow.py`, imported inside each task so
that `inv --list` never loads the inventory reader, the callback parser or the plan model.
"""

from __future__ import annotations

import sys

from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console
from blumeops_tasks.tasking import task

NAME = "hosts"
HELP_INVENTORY = "inventory path (default: config blumeops.hosts.inventory)"
# The flags that pick what a playbook run covers, shared by preview and provision.
HELP_SELECTION = {
    "host": "the host whose playbook to run (playbooks/HOST.yml); default: every host (playbooks/site.yml)",
    "tags": "only tasks with these tags, comma-separated (e.g. caddy)",
    "limit": "only these inventory hosts (an Ansible pattern)",
    "inventory": HELP_INVENTORY,
}


@task(
    help={
        **HELP_SELECTION,
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
    from blumeops_tasks import plan as plan_model
    from blumeops_tasks.hosts import workflow as wf

    p, playbook = wf.selection(c, host, inventory)
    plan_model.report([wf.preview_plan(c, p, playbook, tags, limit)], as_json=json)


@task(
    help={
        **HELP_SELECTION,
        "yes": "apply without asking (required when there is no terminal)",
        "allow_dirty": "apply even when the layer's files are uncommitted or not pushed (journaled as dirty)",
        "plan": "apply only if the preview's plan digest is this one (printed by every preview and `inv plan`)",
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
    plan: str | None = None,
) -> None:
    """Bring hosts in line with the repo: guard and lock, preflight beside the preview, confirm (default No), apply."""
    from blumeops_tasks.gitops.git_state import env_paths
    from blumeops_tasks.gitops.session import Refused, applying
    from blumeops_tasks.hosts import callback_parse
    from blumeops_tasks.hosts import workflow as wf
    from blumeops_tasks.hosts.layer import LAYER

    p, playbook = wf.selection(c, host, inventory)
    what = host or "every host"
    with applying(
        c,
        LAYER,
        task="hosts.provision",
        targets=[host] if host else [],  # until Ansible lists the run's hosts (below)
        allow_dirty=allow_dirty,
        tags=tags,
        limit=limit,
        plan=plan,
        paths={
            "inventory": p.inventory,
            "roles path": p.roles,
            "playbook": playbook,
            **env_paths("ANSIBLE_ROLES_PATH"),  # ansible reads these roles too
        },
    ) as record:
        record.snapshot()  # from here on Ansible reads the journaled commit, whatever a pull does to the clone
        p, playbook = wf.selection(c, host, inventory)
        try:  # nothing has changed yet: a failed preflight refuses the apply
            hosts, preview = wf.preflight_beside_preview(c, p, playbook, tags, limit, host=host)
        except Exit as stop:
            raise Refused(stop.message, code=stop.code or 1) from None
        record.set_targets(hosts)  # the hosts Ansible lists for this --limit
        if not record.review(
            preview,
            question=f"Apply {len(preview.changes)} changes to {', '.join(hosts)}?",
            action=f"provision {what}",
            yes=yes,
            unchanged=f"Nothing to change: {', '.join(hosts)} already in line with the repo.",
        ):
            return
        code, doc = wf.apply_playbook(c, p, playbook, tags, limit)
        wf.summary(doc)
        if code != 0:
            found = callback_parse.problems(doc or {})
            reason = "; ".join(problem.sentence() for problem in found) or "see ansible's output above"
            console.fail(f"ansible-playbook exited {code}: {reason}.", code=code)
        console.out(f"Provisioned {', '.join(hosts)}.", style="green")


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
    from blumeops_tasks.hosts import workflow as wf

    if not host or not cmd:
        console.fail("hosts.run needs --host=NAME and --cmd='COMMAND'.")
    p, _inv, target = wf.ssh_target(c, host, inventory)
    conn = wf.connection(target, p.ssh_timeout)
    wf.open_connection(conn, target)
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
    from blumeops_tasks.hosts import workflow as wf
    from blumeops_tasks.hosts.inventory import ProjectError, playbook_for

    if not host:
        console.fail("hosts.status needs --host=NAME.")
    p, inv, target = wf.ssh_target(c, host, inventory)
    try:
        # The host's own playbook when it has one, else the default one: the roles Ansible lists for it.
        name = host if any((p.playbooks / f"{host}.{ext}").is_file() for ext in ("yml", "yaml")) else None
        playbook = playbook_for(p.playbooks, name, p.default_playbook)
        roles = wf.selected(c, p, playbook, None, host).roles
        probes = probing.probes(p.roles, roles, inv.hostvars.get(host, {}))
    except ProjectError as exc:
        console.fail(str(exc))
    conn = wf.connection(target, p.ssh_timeout)
    wf.open_connection(conn, target)
    try:
        result = conn.run(probing.script(probes, target.python or "python3"), hide=True, warn=True, in_stream=False)
    finally:
        conn.close()
    verdicts = probing.parse(probes, result.stdout)
    healthy = all(v.healthy for v in verdicts)
    if json:
        services = [v.to_dict() for v in verdicts]
        console.print_json({"exit_code": 0 if healthy else 1, "host": host, "healthy": healthy, "services": services})
    else:
        console.table(
            f"{host}: services", ["role", "service", "process", "ports", "files", "state"], probing.rows(verdicts)
        )
    if not healthy:
        raise Exit(code=1)


@task(help={"inventory": HELP_INVENTORY})
def deps(c: Context, inventory: str | None = None) -> None:
    """Install the collections and roles of requirements.yml with ansible-galaxy (needs the network
    for Galaxy or git sources; local sources install offline)."""
    from blumeops_tasks import shell
    from blumeops_tasks.hosts import requirements
    from blumeops_tasks.hosts.inventory import ProjectError
    from blumeops_tasks.hosts.project import base_env, project

    p = project(c, inventory)
    if not p.requirements.is_file():
        console.out(f"No {p.rel(p.requirements)}: nothing to install.")
        return
    try:
        absent = requirements.missing(c, p)
    except ProjectError as exc:
        console.fail(str(exc))
    if not absent:
        console.out(f"Everything in {p.rel(p.requirements)} is installed.", style="green")
        return
    console.out(f"Installing {requirements.describe(absent)} from {p.rel(p.requirements)} (ansible-galaxy).")
    result = shell.run(c, requirements.install_command(p), env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        network, reason = requirements.galaxy_failure((result.stderr or "") + (result.stdout or ""))
        if network:
            console.fail(
                f"ansible-galaxy could not reach the network to install {requirements.describe(absent)} "
                f"({reason}); run `inv hosts.deps` again with network access, or point those entries at local sources."
            )
        console.fail(f"ansible-galaxy install -r {p.rel(p.requirements)} failed: {reason}.")
    still = requirements.missing(c, p)
    if still:
        console.fail(f"ansible-galaxy finished but Ansible still does not find {requirements.describe(still)}.")
    console.out(f"Installed {requirements.describe(absent)}.", style="green")
