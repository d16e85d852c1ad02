"""Checks of the hosts layer: offline (`inv check`) and of the operator's environment (preflight).

Ansible answers the questions (the inventory parses, a playbook graph passes `--syntax-check`, the
configured strategy loads, requirements are installed); our own role conventions are house rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

from invoke.context import Context

from blumeops_tasks import shell, yaml_read
from blumeops_tasks.hosts import duplicates, house_rules, requirements
from blumeops_tasks.hosts.inventory import Inventory, ProjectError, SshTarget, root_playbooks, ssh_command
from blumeops_tasks.hosts.project import (
    Project,
    ansible_env,
    error_line,
    last_line,
    load_inventory,
    playbook_command,
)
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, house_rule, ok, warn

NAME = "hosts"


# -- offline -------------------------------------------------------------------------------------


def _inventory_parses(c: Context, p: Project) -> Outcome:
    try:
        inv = load_inventory(c, p)
    except ProjectError as exc:
        return failed(str(exc), "fix the inventory file Ansible names")
    if twice := duplicates.findings(c, p, inv):  # Ansible merges these silently: a real ambiguity
        return warn("; ".join(twice), "define each host once, or give it the same variables everywhere")
    return ok(f"{p.rel(p.inventory)}: {len(inv.hosts)} hosts ({', '.join(inv.hosts)})")


def _syntax_failure(c: Context, p: Project, playbook: Path, listing_error: str) -> Outcome:
    """Ansible could not list the graph: its own `--syntax-check` names the error (the listing's
    error when the syntax check passes)."""
    result = shell.run(c, playbook_command(p, playbook, mode="syntax"), env=ansible_env(c, p), hide=True, warn=True)
    reason = error_line(result.stderr or result.stdout) if result.exited != 0 else listing_error
    return failed(
        f"{p.rel(playbook)} fails --syntax-check: {reason}",
        f"fix {p.rel(playbook)} (ansible-playbook {p.rel(playbook)} --syntax-check shows the detail)",
    )


# -- one playbook graph, cached on the content of the files it reads -------------------------------


def _rel(p: Project, path: Path) -> str:
    try:
        return path.resolve().relative_to(p.root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def graph_kind(p: Project, playbook: Path) -> str:
    """The cache kind of one root playbook's entries: the playbook, Ansible's command line and the
    ANSIBLE_* environment (one kind per graph and setting; the cache keeps a few entries per kind)."""
    from blumeops_tasks.hosts import ask, cache

    return "graph-" + cache.fingerprint([], extra=[_rel(p, playbook), ask.listing_command(p, [playbook])])[:12]


def role_dirs(c: Context, p: Project, names: set[str]) -> dict[str, Path]:
    """Each role name -> the directory Ansible's roles path resolves it to (first match)."""
    from blumeops_tasks.hosts import ask

    try:
        search = [p.roles, *(Path(d).expanduser() for d in ask.settings(c, p).paths("DEFAULT_ROLES_PATH"))]
    except ProjectError:
        search = [p.roles]
    found: dict[str, Path] = {}
    for name in sorted(names):
        for entry in search:
            base = entry if entry.is_absolute() else p.config.parent / entry
            if (base / name).is_dir():
                found[name] = base / name
                break
    return found


def graph_playbooks(root: Path) -> list[Path]:
    """The root playbook and every playbook it imports (`import_playbook`, transitively), as
    `inventory.imported_playbooks` reads them; when an import is templated (or a playbook unreadable),
    every playbook beside the root (which one it names is known only to Ansible)."""
    import yaml

    from blumeops_tasks.hosts.inventory import playbooks

    seen: list[Path] = []
    todo = [root.resolve()]
    while todo:
        book = todo.pop()
        if book in seen:
            continue
        seen.append(book)
        try:
            document = yaml_read.safe_load(book.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return sorted({*seen, *(b.resolve() for b in playbooks(root.parent))})
        for entry in document if isinstance(document, list) else []:
            target = (
                entry.get("ansible.builtin.import_playbook") or entry.get("import_playbook")
                if isinstance(entry, dict)
                else None
            )
            if isinstance(target, str) and "{{" in target:
                return sorted({*seen, *(b.resolve() for b in playbooks(root.parent))})
            if isinstance(target, str):
                todo.append((book.parent / target).resolve())
    return sorted(seen)


def graph_files(c: Context, p: Project, playbook: Path, plays: list[Any]) -> list[str]:
    """What Ansible's parse of the graph reads: its playbooks (the root and those it imports), the
    inventory, ansible.cfg, requirements.yml, and the directory of every role its plays run, as
    Ansible's listing names them (plus roles a play names that list no task)."""
    from blumeops_tasks.gitops.targets import _declared_roles

    books = graph_playbooks(playbook)
    names = {r for play in plays for r in play.roles()}
    names |= {r for _name, _pattern, roles in _declared_roles(books) for r in roles}
    dirs = role_dirs(c, p, names)
    files = [*books, p.inventory, p.config, p.requirements, *dirs.values()]
    return sorted({_rel(p, f) for f in files})


def graph_entries(p: Project, playbook: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The graph's cached passes, newest first (each: the files its parse read and their digest)."""
    if p.cache_dir is None:
        return []
    found = []
    for path in p.cache_dir.glob(f"{graph_kind(p, playbook)}-*.json"):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            mtime = path.stat().st_mtime_ns
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("files"), list):
            found.append((mtime, path, entry))
    return [(path, entry) for _mtime, path, entry in sorted(found, key=lambda item: item[0], reverse=True)]


def graph_entry(p: Project, playbook: Path) -> dict[str, Any] | None:
    """The newest cached pass of the graph: which paths its parse reads."""
    entries = graph_entries(p, playbook)
    return entries[0][1] if entries else None


def passing_entry(
    p: Project, playbook: Path, digests: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any] | None:
    """A cached pass whose files have the content they have now (marked as just used), if any. The
    digests of the file lists it read are left in `digests`, for the pass that follows a miss."""
    from blumeops_tasks.hosts import cache

    digests = {} if digests is None else digests
    for path, entry in graph_entries(p, playbook):
        files = tuple(str(f) for f in entry["files"])
        if files not in digests:
            digests[files] = cache.content_digest(p.root, [p.root / f for f in files])
        if entry.get("digest") == digests[files]:
            with contextlib.suppress(OSError):
                os.utime(path)  # the cache keeps the most recently written (here: used) entries
            return entry
    return None


def graph_outcome(c: Context, p: Project, playbook: Path) -> Outcome:
    """The graph parses, as Ansible's listing of it says (`--list-hosts --list-tasks --list-tags`
    parses everything `--syntax-check` parses, then lists). A pass is cached on the content of
    the files the graph reads; an edit to any of them (and only to them) parses it again."""
    from blumeops_tasks.hosts import ask, cache

    digests: dict[tuple[str, ...], str] = {}
    entry = passing_entry(p, playbook, digests)
    if entry is not None:
        return ok(
            f"{p.rel(playbook)} parses (cached: the {len(entry['files'])} paths it reads are unchanged since "
            f"Ansible parsed them)"
        )
    try:
        plays = ask.listing(c, p, [playbook])
    except ProjectError as exc:
        return _syntax_failure(c, p, playbook, str(exc))
    files = graph_files(c, p, playbook, plays)
    roles = sorted({r for play in plays for r in play.roles()})
    if p.cache_dir is not None:
        # When the graph reads the same files as its last pass (an edit inside them), their digest
        # taken just before the parse serves: one read of them per check, not two.
        digest = digests.get(tuple(files)) or cache.content_digest(p.root, [p.root / f for f in files])
        value = {"files": files, "digest": digest, "roles": roles}
        cache.put(p.cache_dir, graph_kind(p, playbook), digest[:32], value)
    return ok(
        f"{p.rel(playbook)} parses (ansible-playbook --list-tasks, every step of --syntax-check and then the "
        f"listing: {len(plays)} plays; roles: {', '.join(roles) or 'none'})"
    )


def _reads(entry: dict[str, Any] | None, changed: list[str]) -> bool:
    """Whether a graph's cached entry names any of the changed paths (a file, or one under a directory);
    no entry: the graph was never parsed here, so it counts as touched."""
    if entry is None:
        return True
    names = [str(f).rstrip("/") for f in entry["files"]]
    return any(path == name or path.startswith(name + "/") for path in changed for name in names)


def _specs(p: Project, strict: bool, only: list[str] | None = None) -> Outcome:
    names = house_rules.roles(p.roles) if only is None else only
    findings = [f for role in names for f in house_rules.spec_findings(p.roles / role)]
    if findings:
        return house_rule(strict, "; ".join(findings), "keep meta/argument_specs.yml equal to defaults/main.yml")
    return ok(f"argument specs match defaults for {_roles_phrase(names)}")


def _headers(p: Project, strict: bool, only: list[str] | None = None) -> Outcome:
    names = house_rules.roles(p.roles) if only is None else only
    findings = [f for role in names for f in house_rules.header_findings(p.roles / role)]
    if findings:
        return house_rule(strict, "; ".join(findings), "head each template with {{ ansible_managed | comment }}")
    return ok(f"every template of {_roles_phrase(names)} names ansible_managed")


def _roles_phrase(names: list[str]) -> str:
    return f"role {names[0]}" if len(names) == 1 else f"{len(names)} roles"


def requirements_key(c: Context, p: Project) -> str | None:
    """What the answer "everything in requirements.yml is installed" depends on: the file, the
    ansible-galaxy script, each installed collection's MANIFEST.json (rewritten by every install) and
    the collections and roles present in the configured paths. None when Ansible's settings cannot
    be read (then it is asked)."""
    from blumeops_tasks.hosts import ask, cache

    try:
        configured = ask.settings(c, p)
    except ProjectError:
        return None
    collection_dirs = [Path(d).expanduser() for d in configured.paths("COLLECTIONS_PATHS")]
    manifests = sorted(m for d in collection_dirs for m in d.glob("ansible_collections/*/*/MANIFEST.json"))
    present = sorted(str(n) for d in collection_dirs for n in d.glob("ansible_collections/*/*"))
    roles = sorted(str(r) for d in configured.paths("DEFAULT_ROLES_PATH") for r in Path(d).expanduser().glob("*"))
    galaxy = shell.which(p.ansible_galaxy)
    sources = [p.requirements, *manifests, *([Path(galaxy)] if galaxy else [])]
    return cache.fingerprint(sources, extra=[p.ansible_galaxy, *present, *roles])


def requirements_outcome(c: Context, p: Project, before_a_run: bool) -> Outcome:
    """Every collection and role of requirements.yml installed where Ansible looks. Missing ones
    are named: a warning for `inv check` (the files are fine), a failure before a run (preflight).
    "All installed" is cached on what it depends on (requirements_key); a missing one is asked again."""
    from blumeops_tasks.hosts import cache

    if not p.requirements.is_file():
        return ok(f"no {p.rel(p.requirements)} (nothing to install)")
    installed = f"everything in {p.rel(p.requirements)} is installed"
    key = requirements_key(c, p) if p.cache_dir is not None else None
    if p.cache_dir is not None and key is not None and cache.get(p.cache_dir, "requirements", key) == "installed":
        return ok(installed)
    try:
        absent = requirements.missing(c, p)
    except ProjectError as exc:
        return failed(str(exc), f"fix {p.rel(p.requirements)}")
    if absent:
        return (failed if before_a_run else warn)(
            f"not installed from {p.rel(p.requirements)}: {requirements.describe(absent)}",
            "run `inv hosts.deps` (ansible-galaxy install -r; needs the network or local sources)",
        )
    if p.cache_dir is not None and key is not None:
        cache.put(p.cache_dir, "requirements", key, "installed")
    return ok(installed)


def _graph_spec(c: Context, p: Project, playbook: Path) -> CheckSpec:
    return CheckSpec(NAME, f"syntax {playbook.name}", lambda: graph_outcome(c, p, playbook), timeout=60)


def offline_checks(c: Context, p: Project, strict: bool = False) -> list[CheckSpec]:
    specs = [
        CheckSpec(NAME, "inventory parses", lambda: _inventory_parses(c, p)),
        CheckSpec(NAME, "requirements installed", lambda: requirements_outcome(c, p, False), timeout=60),
        CheckSpec(NAME, "argument specs = defaults", lambda: _specs(p, strict)),
        CheckSpec(NAME, "ansible_managed headers", lambda: _headers(p, strict)),
    ]
    # One syntax check per playbook graph: a playbook another one imports is checked with it.
    specs += [_graph_spec(c, p, playbook) for playbook in root_playbooks(p.playbooks)]
    return specs


def scoped_checks(c: Context, p: Project, changed: list[str], strict: bool = False) -> list[CheckSpec]:
    """`inv check --changed`: only the rows the changed paths (repo-relative) touch. A role's files
    -> its house rules and the graphs that read them; the inventory or ansible.cfg -> the inventory
    row and every graph; requirements.yml -> its row and every graph; a playbook -> its graph."""
    roles_dir = _rel(p, p.roles)
    inventory, config, reqs = _rel(p, p.inventory), _rel(p, p.config), _rel(p, p.requirements)
    known = set(house_rules.roles(p.roles))
    roles = sorted(
        {path[len(roles_dir) + 1 :].split("/", 1)[0] for path in changed if path.startswith(roles_dir + "/")} & known
    )
    specs: list[CheckSpec] = []
    if any(path in (config, inventory) or path.startswith(inventory + "/") for path in changed):
        specs.append(CheckSpec(NAME, "inventory parses", lambda: _inventory_parses(c, p)))
    if any(path in (config, reqs) for path in changed):
        specs.append(CheckSpec(NAME, "requirements installed", lambda: requirements_outcome(c, p, False), timeout=60))
    if roles:
        specs.append(CheckSpec(NAME, "argument specs = defaults", lambda: _specs(p, strict, roles)))
        specs.append(CheckSpec(NAME, "ansible_managed headers", lambda: _headers(p, strict, roles)))
    specs += [
        _graph_spec(c, p, playbook)
        for playbook in root_playbooks(p.playbooks)
        if _reads(graph_entry(p, playbook), changed)
    ]
    return specs


# -- preflight -----------------------------------------------------------------------------------


def ansible_version(c: Context, p: Project) -> Outcome:
    """ansible-playbook on PATH and its version."""
    if not shell.which(p.ansible_playbook):
        return failed(
            f"{p.ansible_playbook} is not installed", "pip install 'ansible-core>=2.19' (or pip install -e .)"
        )
    try:
        core, _python = about_ansible(c, p)
    except ProjectError as exc:
        return failed(str(exc), "reinstall ansible-core")
    return ok(f"ansible-playbook (core {core})")


def about_ansible(c: Context, p: Project) -> tuple[str, str]:
    """(core version, interpreter) as `ansible-playbook --version` states them, cached per executable
    (path, size, mtime). The interpreter is the one Ansible runs in, wherever its script is (a
    version manager's shim is a shell script); without that line, the script's shebang."""
    from blumeops_tasks.hosts import cache
    from blumeops_tasks.hosts.project import base_env

    executable = shell.which(p.ansible_playbook) or p.ansible_playbook
    key = cache.fingerprint([Path(executable)])
    known = cache.get(p.cache_dir, "ansible-about", key) if p.cache_dir is not None else None
    if isinstance(known, list) and len(known) == 2 and Path(known[1]).is_file():
        return str(known[0]), str(known[1])
    result = shell.run(c, f"{p.ansible_playbook} --version", env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(f"{p.ansible_playbook} --version failed: {last_line(result.stderr or result.stdout)}")
    core = re.search(r"core ([0-9.]+)", result.stdout)
    python = re.search(r"^\s*python version = .*\((/[^()]+)\)\s*$", result.stdout, re.MULTILINE)
    found = (core.group(1) if core else "?", python.group(1) if python else _shebang_python(executable))
    if p.cache_dir is not None and core and python:
        cache.put(p.cache_dir, "ansible-about", key, list(found))
    return found


# Asks Ansible's own plugin loader, in the interpreter ansible-playbook runs in, for the strategy.
_LOAD_STRATEGY = """
import sys
from ansible.plugins.loader import strategy_loader
try:
    plugin = strategy_loader.get(sys.argv[1], class_only=True)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(3)
sys.exit(0 if plugin is not None else 4)
"""


def ansible_python(c: Context, p: Project) -> str:
    """The interpreter ansible-playbook runs in (`about_ansible`), python3 when it cannot say."""
    try:
        return about_ansible(c, p)[1]
    except ProjectError:
        return "python3"


def _shebang_python(executable: str) -> str:
    """The interpreter of a script's shebang (through `env`), else python3."""
    try:
        first = Path(executable).read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        first = ""
    if first.startswith("#!"):
        words = shlex.split(first[2:])
        if words and Path(words[0]).name == "env" and len(words) > 1:
            return words[1]
        if words:
            return words[0]
    return "python3"


def strategy_outcome(name: str, exited: int, output: str) -> Outcome:
    """Did Ansible's loader load the configured strategy? A strategy that cannot load fails every run."""
    if exited == 0:
        if name.startswith("mitogen"):
            return ok(f"strategy {name} (Mitogen's own)")
        return ok(f"strategy {name}")
    reason = last_line(output) if output.strip() else "no strategy plugin by that name"
    fix = "set strategy = free in ansible.cfg"
    if name.startswith("mitogen"):
        fix = "pip install -e '.[mitogen]' (Mitogen's strategies are an extra), or " + fix
    return failed(f"the configured strategy {name} does not load: {reason}", fix)


def _strategy(c: Context, p: Project) -> Outcome:
    """Ansible's loader loads the configured strategy. A pass is cached on what the answer depends on:
    the strategy's name, the ansible-playbook script, the plugin paths (and their files) and the
    environment the loader runs in; a failure always asks again."""
    from blumeops_tasks.hosts import ask, cache

    configured = ask.settings(c, p)
    name = str(configured.get("DEFAULT_STRATEGY") or "linear")
    env = ansible_env(c, p)
    command = shlex.join([ansible_python(c, p), "-c", _LOAD_STRATEGY, name])
    executable = shell.which(p.ansible_playbook)
    plugin_dirs = [Path(d).expanduser() for d in configured.paths("DEFAULT_STRATEGY_PLUGIN_PATH")]
    plugin_dirs += [Path(d) for d in env.get("ANSIBLE_STRATEGY_PLUGINS", "").split(":") if d]
    sources = [Path(executable)] if executable else []
    key = cache.fingerprint([*sources, *plugin_dirs], extra=[command, *sorted(f"{k}={v}" for k, v in env.items())])
    if p.cache_dir is not None and cache.get(p.cache_dir, "strategy", key) == name:
        return strategy_outcome(name, 0, "")
    result = shell.run(c, command, env=env, hide=True, warn=True)
    if result.exited == 0 and p.cache_dir is not None:
        cache.put(p.cache_dir, "strategy", key, name)
    return strategy_outcome(name, result.exited, (result.stdout or "") + (result.stderr or ""))


def reach_ssh_args(ssh: dict[str, object]) -> str:
    """Ansible's ssh_args, plus the ControlPath its ssh connection derives when ssh_args has none.

    The control directory is created, as Ansible's ssh connection does before it connects.
    """
    args = str(ssh.get("ssh_args") or "")
    path = ""
    match = re.search(r"ControlPath=(\S+)", args)
    if match:
        path = match.group(1).strip("'\"")
    elif "ControlPersist" in args and "%(directory)s" in str(ssh.get("control_path") or ""):
        directory = str(ssh.get("control_path_dir") or "~/.ansible/cp")
        path = str(ssh["control_path"]) % {"directory": str(Path(directory).expanduser())}
        args += f" -o ControlPath={shlex.quote(path)}"
    if path and "%" not in str(Path(path).parent):
        with contextlib.suppress(OSError):
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return args


def reach(c: Context, target: SshTarget, timeout: float, ssh_args: str = "") -> Outcome:
    """One SSH round trip to the host with Ansible's connection settings; no prompts, bounded time."""
    command = ssh_command(target, "true", timeout, ssh_args)
    result = shell.run(c, command, hide=True, warn=True, timeout=timeout + 2)
    if result.exited == 0:
        return ok(f"{target.where()} answers over SSH")
    reason = last_line(result.stderr) if result.stderr.strip() else f"ssh exit code {result.exited}"
    return failed(
        f"host {target.name} ({target.where()}) is unreachable over SSH: {reason}",
        f"check that {target.name} is up and on the tailnet, and that its key is authorized",
    )


def _reach_spec(c: Context, target: SshTarget, timeout: float, ssh_args: str) -> CheckSpec:
    def run() -> Outcome:
        try:
            return reach(c, target, timeout, ssh_args)
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
    """ansible present, its strategy loads, requirements installed, each targeted host reachable
    (concurrently, each with a timeout), the roles' secrets present."""
    from blumeops_tasks.hosts import ask
    from blumeops_tasks.hosts.inventory import required_env

    specs = [
        CheckSpec(NAME, "ansible-playbook", lambda: ansible_version(c, p)),
        CheckSpec(NAME, "strategy", lambda: _strategy(c, p), timeout=30),
        CheckSpec(NAME, "requirements installed", lambda: requirements_outcome(c, p, True), timeout=30),
    ]
    if inv is not None and hosts:
        try:
            ssh_args = reach_ssh_args(ask.settings(c, p).ssh)
        except ProjectError:  # reported by the strategy check, which needs the same settings
            ssh_args = ""
        specs += [_reach_spec(c, inv.ssh_target(host), p.ssh_timeout, ssh_args) for host in hosts]
    needed = required_env(p.roles, roles)
    specs.append(CheckSpec(NAME, "secrets", lambda: _secrets(needed)))
    return specs


def inventory_or_failure(c: Context, p: Project) -> tuple[Inventory | None, CheckSpec | None]:
    try:
        return load_inventory(c, p), None
    except ProjectError as exc:
        message = str(exc)
        return None, CheckSpec(NAME, "inventory", lambda: failed(message, "fix the inventory"))
