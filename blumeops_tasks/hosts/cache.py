"""A small cache for results that depend only on files: the parsed inventory, passing syntax checks.

The key is a fingerprint of every file under the given paths (path, size, mtime) plus the inputs
that matter (command line, environment that changes ansible's reading). A changed file, a new
file or a different setting gives a new key; entries are plain JSON files under the state dir.
Only successes are cached: a failure is always re-run, so its message is always current.
Each kind keeps its few most recent entries (KEEP), so alternating between inputs (another
inventory, another ANSIBLE_* setting) does not evict the entry the next run needs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Environment variables that change what ansible reads (kept in the key).
KEY_ENV_PREFIXES = ("ANSIBLE_",)
# Entries kept per kind; older ones are removed when a new one is written.
KEEP = 8


ROOT_MARK = "/\0blumeops-root"  # where the repo root was, in a cached answer


def files_under(top: Path) -> list[Path]:
    """`top` itself when it is a file, else every file under it (sorted; none when it is missing),
    never a `__pycache__` one."""
    files = [top] if top.is_file() else sorted(f for f in top.rglob("*") if f.is_file()) if top.is_dir() else []
    return [f for f in files if "__pycache__" not in f.parts]


def fingerprint(paths: Iterable[Path], extra: Iterable[str] = ()) -> str:
    digest = hashlib.sha256()
    for root in sorted({Path(p) for p in paths}):
        files = files_under(root)
        if not files:
            digest.update(f"missing:{root}\n".encode())
        for path in files:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return _finish(digest, extra)


def _finish(digest: Any, extra: Iterable[str]) -> str:
    """The key: the files' digest so far, then the other inputs and the ANSIBLE_* environment."""
    for item in extra:
        digest.update(f"extra:{item}\n".encode())
    for key in sorted(k for k in os.environ if k.startswith(KEY_ENV_PREFIXES)):
        digest.update(f"env:{key}={os.environ[key]}\n".encode())
    return str(digest.hexdigest()[:32])


def content_digest(root: Path, paths: Iterable[Path]) -> str:
    """sha256 over the bytes of every file at or under `paths`, each named by its path relative to
    `root` (absolute when outside it): the same for a byte-identical copy of the repo elsewhere."""
    digest = hashlib.sha256()
    for top in sorted({Path(p) for p in paths}):
        files = files_under(top)
        if not files:
            digest.update(f"missing:{_label(root, top)}\n".encode())
        for path in files:
            try:
                data = hashlib.sha256(path.read_bytes()).digest()
            except OSError:
                data = b"unreadable"
            digest.update(f"{_label(root, path)}\0".encode() + data + b"\n")
    return digest.hexdigest()


def _label(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def content_key(root: Path, paths: Iterable[Path], extra: Iterable[str] = ()) -> str:
    """Like `fingerprint`, keyed on the files' `content_digest` (not where the root is, nor mtimes) and
    on `extra` with the root's path in it replaced by a mark: the same key for a byte-identical copy
    of the repo, such as an apply's snapshot of its commit. For answers that hold for every copy
    (once `relocate`d)."""
    digest = hashlib.sha256(content_digest(root, paths).encode())
    return _finish(digest, [item.replace(str(root), ROOT_MARK) for item in extra])


def relocate(data: Any, old: str, new: str) -> Any:
    """`data` with every string that is the path `old`, or lies under it, moved under `new`."""
    if isinstance(data, str):
        return new + data[len(old) :] if data == old or data.startswith(old + "/") else data
    if isinstance(data, list):
        return [relocate(item, old, new) for item in data]
    if isinstance(data, dict):
        return {key: relocate(value, old, new) for key, value in data.items()}
    return data


def get(directory: Path, kind: str, key: str) -> Any:
    path = directory / f"{kind}-{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def put(directory: Path, kind: str, key: str, value: Any) -> None:
    """Best effort: a cache that cannot be written is only a slower next run."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{kind}-{key}.tmp"
        tmp.write_text(json.dumps(value), encoding="utf-8")
        tmp.replace(directory / f"{kind}-{key}.json")
        _prune(directory, kind)
    except OSError:
        pass


def _prune(directory: Path, kind: str) -> None:
    """Keep the KEEP most recently written entries of a kind (keys are 32 hex digits, so
    `syntax-indri-*` never matches `syntax-indri-extra-*`)."""
    entries = []
    for path in directory.glob(f"{kind}-*.json"):
        suffix = path.name[len(kind) + 1 : -len(".json")]
        if len(suffix) == 32 and all(ch in "0123456789abcdef" for ch in suffix):
            try:
                entries.append((path.stat().st_mtime_ns, path))
            except OSError:
                continue
    for _mtime, path in sorted(entries, reverse=True)[KEEP:]:
        path.unlink(missing_ok=True)
