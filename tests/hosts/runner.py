"""What the hosts tests must never change on the machine that runs them, as one comparable snapshot.

The paths the roles write on a host (Caddy's and borgmatic's configuration, node_exporter's
arguments, borgmatic's virtualenv and its link in /usr/local/bin), the packages dpkg has installed,
the privilege-separation directory sshd creates, and this machine's mounts. Taken before the first
test host starts and again after provisioning (tests/hosts/test_runner_untouched.py).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

WATCHED_TREES = ("/etc/caddy", "/etc/borgmatic", "/usr/local/bin", "/opt/borgmatic", "/root/.local/share/caddy")
WATCHED_FILES = ("/etc/default/prometheus-node-exporter", "/run/sshd")


def describe(path: Path) -> str:
    """One line per filesystem entry: what it is, and its content's digest for files."""
    if path.is_symlink():
        return f"link -> {path.readlink()}"
    if path.is_dir():
        return "dir"
    if path.is_file():
        return "file " + hashlib.sha256(path.read_bytes()).hexdigest()
    return "absent" if not path.exists() else "other"


def tree(root: Path) -> dict[str, str]:
    """Every entry under root (root included), described."""
    entries = {str(root): describe(root)}
    if root.is_dir() and not root.is_symlink():
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                entries[str(path)] = describe(path)
    return entries


def packages() -> list[str]:
    """dpkg's own list: package, version and status of everything it knows."""
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(listed.stdout.splitlines())


def mounts() -> list[str]:
    """This machine's mount table (mount point and source), as the test process sees it."""
    table = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        source = fields[fields.index("-") + 2]
        table.append(f"{fields[4]} {source}")
    return sorted(table)


def snapshot() -> dict[str, object]:
    files: dict[str, str] = {}
    for root in WATCHED_TREES:
        files.update(tree(Path(root)))
    files.update({path: describe(Path(path)) for path in WATCHED_FILES})
    return {"files": files, "packages": packages(), "mounts": mounts()}


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What changed between two snapshots, one line per entry (empty when nothing did)."""
    changed: list[str] = []
    files_before, files_after = before["files"], after["files"]
    assert isinstance(files_before, dict)
    assert isinstance(files_after, dict)
    for path in sorted(set(files_before) | set(files_after)):
        was, now = files_before.get(path, "absent"), files_after.get(path, "absent")
        if was != now:
            changed.append(f"{path}: {was} -> {now}")
    for key in ("packages", "mounts"):
        was_set, now_set = set(before[key]), set(after[key])  # type: ignore[call-overload]
        changed.extend(f"{key}: - {line}" for line in sorted(was_set - now_set))
        changed.extend(f"{key}: + {line}" for line in sorted(now_set - was_set))
    return changed
