"""Real git repositories in temporary directories, and a real invoke Context pointed at them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.config import Config
from invoke.context import Context

from blumeops_tasks.layer import Layer
from blumeops_tasks.plan import LayerPlan

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Operator",
    "GIT_AUTHOR_EMAIL": "op@example.invalid",
    "GIT_COMMITTER_NAME": "Test Operator",
    "GIT_COMMITTER_EMAIL": "op@example.invalid",
}

INITIAL_FILES = {
    "README.md": "# blumeops\n",
    "ansible.cfg": "[defaults]\ninventory = inventory/hosts.yml\nroles_path = roles\n",
    "inventory/hosts.yml": "all:\n  hosts:\n    indri: {}\n    sifaka: {}\n",
    "inventory/host_vars/indri.yml": "caddy_port: 443\n",
    "playbooks/indri.yml": "- hosts: indri\n  roles:\n    - caddy\n    - role: borgmatic\n",
    "playbooks/sifaka.yml": "- hosts: sifaka\n  roles:\n    - node_exporter\n    - caddy\n",
    "roles/caddy/tasks/main.yml": "- name: caddy\n  ansible.builtin.debug: {}\n",
    "roles/borgmatic/tasks/main.yml": "- name: borgmatic\n  ansible.builtin.debug: {}\n",
    "roles/node_exporter/tasks/main.yml": "- name: ne\n  ansible.builtin.debug: {}\n",
    "argocd/apps/grafana/deployment.yaml": "kind: Deployment\n",
    "argocd/apps/loki/deployment.yaml": "kind: Deployment\n",
    "pulumi/__main__.py": "print('tailnet')\n",
}


# The layers' own path settings, as the real layers declare them (see make_context).
LAYER_PATHS: dict[str, dict[str, str]] = {
    "hosts": {"roles": "roles", "playbooks": "playbooks", "inventory": "inventory", "ansible_config": "ansible.cfg"},
    "tailnet": {"dir": "pulumi"},
    "argocd": {"dir": "argocd"},
}


def _layer(name: str, apply_task: str) -> Layer:
    return Layer(
        name=name,
        help=name,
        collection=Collection(name),
        path_settings=tuple(LAYER_PATHS[name]),
        offline_checks=lambda _c: [],
        preflight_checks=lambda _c: [],
        plan=lambda _c: LayerPlan(name),
        apply_task=apply_task,
    )


HOSTS = _layer("hosts", "hosts.provision")
TAILNET = _layer("tailnet", "tailnet.up")
ARGOCD = _layer("argocd", "argocd.sync")


class Repo:
    """A work tree cloned from a bare remote, so upstream states are real."""

    def __init__(self, base: Path, *, upstream: bool = True) -> None:
        self.remote = base / "remote.git"
        self.root = base / "work"
        self.state = base / "state"
        self.root.mkdir(parents=True)
        self.git("init", "-q", "--bare", "-b", "main", str(self.remote), cwd=base)
        self.git("init", "-q", "-b", "main")
        for path, text in INITIAL_FILES.items():
            self.write(path, text)
        self.commit("initial")
        self.git("remote", "add", "origin", str(self.remote))
        if upstream:
            self.git("push", "-q", "-u", "origin", "main")

    @classmethod
    def clone_of(cls, other: Repo, base: Path) -> Repo:
        """Another clone of `other`'s remote with its own work tree, state and locks: a second machine."""
        repo = cls.__new__(cls)
        repo.remote = other.remote
        repo.root = base / "work"
        repo.state = base / "state"
        base.mkdir(parents=True, exist_ok=True)
        repo.git("clone", "-q", str(other.remote), str(repo.root), cwd=base)
        return repo

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return subprocess.run(
            ["git", *args],
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            check=True,
            env={**_env(), **GIT_IDENTITY},
        ).stdout

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def commit(self, message: str, *paths: str) -> str:
        self.git("add", *(paths or ("-A",)))
        self.git("commit", "-q", "-m", message)
        return self.head()

    def change(self, path: str, message: str, text: str | None = None) -> str:
        self.write(path, text if text is not None else f"# {message}\n")
        return self.commit(message, path)

    def push(self) -> None:
        self.git("push", "-q")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def context(self, **extra: Any) -> Context:
        return make_context(self.root, self.state, **extra)

    def journal(self) -> list[dict[str, Any]]:
        """One entry per apply, oldest first: the end line, or the started line of an apply with no end."""
        from blumeops_tasks.gitops import journal

        entries, bad = journal.read(self.state / "journal.jsonl")
        assert bad == 0, f"{bad} unreadable journal line(s)"
        return entries

    def journal_lines(self) -> list[dict[str, Any]]:
        """Every raw line of the journal, started lines included."""
        path = self.state / "journal.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]

    @property
    def locks(self) -> Path:
        """The lock directory of this repository (every clone shares it)."""
        root = self.git("rev-list", "--max-parents=0", "HEAD").split()
        return self.state.parent / "locks" / sorted(root)[0]

    def journal_text(self) -> str:
        path = self.state / "journal.jsonl"
        return path.read_text(encoding="utf-8") if path.exists() else ""


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def make_context(root: Path, state: Path, **extra: Any) -> Context:
    settings: dict[str, Any] = {
        "root": str(root),
        "state_dir": str(state),
        "journal": "journal.jsonl",
        "lock_dir": str(state.parent / "locks"),
    }
    settings.update({name: dict(paths) for name, paths in LAYER_PATHS.items()})
    settings.update(extra)
    from blumeops_tasks.namespace import build_namespace

    # The real layers' defaults (as `inv` has them), then this test's settings.
    config = Config(overrides={"blumeops": settings})
    config.load_collection(build_namespace(root).configuration())
    return Context(config=config)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**_env(), **GIT_IDENTITY, **(extra or {})}
