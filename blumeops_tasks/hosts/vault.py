"""Ansible Vault values are secrets: decrypted by Ansible, registered with blumeops' redaction.

A playbook run may print a vault value (a `--diff` of a template that uses it, a task's message);
so before any run, the project's files that hold vault data are handed to Ansible's own loader,
with the vault secrets Ansible is configured with (ansible.cfg's vault_password_file,
ANSIBLE_VAULT_PASSWORD_FILE, vault identities), in the interpreter ansible-playbook runs in. It
answers with the plaintexts - every inline `!vault` value, every string of a vault-encrypted vars
file, the whole text of any other encrypted file - over a pipe, never written anywhere and never
cached; `redaction.add_secret_values` masks them (and their encodings) on the screen, in every
JSON document and in the journal, and a diff that holds one is shown as "changed (secret)".

A repo with no vault data costs a scan of its files for the vault header, nothing more.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from invoke.context import Context

from blumeops_tasks import shell
from blumeops_tasks.hosts.inventory import ProjectError
from blumeops_tasks.hosts.project import Project, base_env, error_line

VAULT_HEADER = b"$ANSIBLE_VAULT"
# Where the results callback finds the files holding vault data (paths only; it decrypts them itself).
VAULT_FILES_ENV = "BLUMEOPS_VAULT_FILES"
_MAX_FILE = 4 * 1024 * 1024
_SKIPPED_DIRS = frozenset({".git", "__pycache__", ".ansible"})

# Ansible's loader and vault, in ansible-playbook's interpreter: argv[1] is vault_walk.py (run by its
# path: blumeops_tasks is not importable there), the rest the files holding vault data; prints
# the JSON list of their plaintexts.
_DECRYPT = """
import json, runpy, sys
from ansible import constants as C
from ansible.cli import CLI
from ansible.parsing.dataloader import DataLoader

walk = runpy.run_path(sys.argv[1])
loader = DataLoader()
CLI.setup_vault_secrets(loader, C.DEFAULT_VAULT_IDENTITY_LIST, auto_prompt=False)
try:
    found = walk["plaintexts"](loader, sys.argv[2:], strict=True)
except walk["VaultFileError"] as error:
    print(f"{error.path}: {error.message}", file=sys.stderr)
    sys.exit(3)
print(json.dumps(sorted(found)))
"""
# The walk itself, shared with the results callback.
WALKER = Path(__file__).with_name("ansible_plugins") / "vault_walk.py"


def files_with_vault_data(roots: list[Path]) -> list[Path]:
    """Files under the roots that hold vault data (a whole encrypted file or an inline `!vault`)."""
    found: list[Path] = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for path in candidates:
            if _SKIPPED_DIRS.intersection(path.parts) or not path.is_file():
                continue
            try:
                if path.stat().st_size > _MAX_FILE:
                    continue
                if VAULT_HEADER in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return list(dict.fromkeys(found))


def inventory_roots(p: Project) -> list[Path]:
    """The inventory, and for an inventory file the host_vars/ and group_vars/ beside it."""
    if p.inventory.is_file():
        return [p.inventory, p.inventory.parent / "host_vars", p.inventory.parent / "group_vars"]
    return [p.inventory]


def project_vault_files(p: Project) -> list[Path]:
    """The project's files that hold vault data: under the inventory, playbooks and roles."""
    return files_with_vault_data([*inventory_roots(p), p.playbooks, p.roles])


def vault_values(c: Context, p: Project, files: list[Path]) -> list[str]:
    """The plaintexts of the vault data in `files`, decrypted by Ansible."""
    from blumeops_tasks.hosts.checks import ansible_python

    if not files:
        return []
    command = shlex.join([ansible_python(c, p), "-c", _DECRYPT, str(WALKER), *(str(f) for f in files)])
    result = shell.run(c, f"cd {shlex.quote(str(p.root))} && {command}", env=base_env(p), hide=True, warn=True)
    if result.exited != 0:
        raise ProjectError(
            f"Ansible cannot decrypt the vault data in {', '.join(p.rel(f) for f in files)}: "
            f"{error_line(result.stderr or result.stdout)}; set vault_password_file in {p.rel(p.config)} "
            f"(or ANSIBLE_VAULT_PASSWORD_FILE) so runs can decrypt it and keep it off the screen."
        )
    try:
        values = json.loads(result.stdout)
    except ValueError:
        raise ProjectError("Ansible's vault reader printed no JSON; run `inv hosts.preview` again.") from None
    return [str(v) for v in values if isinstance(v, str)]


# The vault files (path, size, mtime) whose values this process has registered already.
_registered: set[tuple[tuple[str, int, int], ...]] = set()


def protect(c: Context, p: Project) -> None:
    """Register the project's vault plaintexts as secrets before a run can print them (once per
    process for the same files)."""
    from blumeops_tasks.redaction import add_secret_values

    files = project_vault_files(p)
    seen = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if not files or seen in _registered:
        return
    add_secret_values(vault_values(c, p, files))
    _registered.add(seen)
