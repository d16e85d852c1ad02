"""The plaintexts of the vault data in a project's files, read by Ansible's own loader.

Shared by the tasks' decrypt step (hosts/vault.py, before a run) and the results callback (during
it). Both run in ansible-playbook's interpreter, where blumeops_tasks cannot be imported, so each
runs this file by its path (`runpy.run_path`); it imports nothing but Ansible.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


class VaultFileError(Exception):
    """A file Ansible could not read or decrypt; `path` and a one-line `message`."""

    def __init__(self, path: str, error: BaseException) -> None:
        self.path = path
        self.message = " ".join(str(getattr(error, "message", "") or error).split())
        super().__init__(f"{path}: {self.message}")


def plaintexts(loader: Any, paths: Iterable[str], *, strict: bool) -> set[str]:
    """Every inline `!vault` value, every string of a vault-encrypted vars file and the whole text of
    any other encrypted file among `paths`, decrypted with `loader`'s vault secrets. A file that
    cannot be read raises VaultFileError when `strict`, else is passed over."""
    from ansible.parsing.vault import VaultHelper, is_encrypted_file

    found: set[str] = set()

    def walk(node: Any, whole: bool) -> None:
        if VaultHelper.get_ciphertext(node, with_tags=False) is not None:
            found.add(str(node))
        elif isinstance(node, dict):
            for value in node.values():
                walk(value, whole)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value, whole)
        elif whole and isinstance(node, str):
            found.add(str(node))

    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                whole = bool(is_encrypted_file(handle))
            try:
                data = loader.load_from_file(path, cache="none")
            except Exception:
                if not whole:
                    raise
                data = loader.get_text_file_contents(path)  # encrypted, and not YAML inside
            walk(data, whole)
        except Exception as error:  # Ansible's own errors, whatever their class
            if strict:
                raise VaultFileError(path, error) from error
    return found
