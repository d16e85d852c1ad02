"""An apply runs from the commit it journals: a detached worktree of it, with what git does not track
linked in from the clone, so a pull, checkout or commit during the apply cannot mix two commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke.exceptions import Exit

from blumeops_tasks import shell
from blumeops_tasks.config import source_root
from blumeops_tasks.gitops import snapshot
from blumeops_tasks.gitops.session import applying
from blumeops_tasks.hosts.project import project
from tests.gitops.helpers import HOSTS, Repo

ROLE = "roles/caddy/tasks/main.yml"


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A pushed clone with ignored files (a dotenv, installed collections) and an untracked note."""
    made = Repo(tmp_path)
    made.write(".gitignore", ".env\ncollections/\n")
    made.commit("ignore local files", ".gitignore")
    made.push()
    made.write(".env", "VAULT_PASS=local\n")
    made.write("collections/ansible_collections/homelab/tools/MANIFEST.json", "{}\n")
    made.write("scratch.txt", "untracked, not ignored\n")
    return made


def worktrees(repo: Repo) -> list[str]:
    return [line for line in repo.git("worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def test_the_tools_read_the_journaled_commit_while_the_clone_moves_on(repo: Repo, tmp_path: Path) -> None:
    c = repo.context()
    commit = repo.head()
    marker = tmp_path / "tool-ran"
    with applying(c, HOSTS, task="hosts.provision", targets=["indri"]) as record:
        tree = record.snapshot()
        assert tree != repo.root
        assert project(c).roles == tree / "roles"  # the layer's paths follow into the snapshot
        assert repo.git("-C", str(tree), "rev-parse", "HEAD").strip() == commit
        before = (tree / ROLE).read_text()
        pulled = repo.change(ROLE, "a pull landed")
        assert (tree / ROLE).read_text() == before  # the pull never reaches the apply's files
        shell.run(c, f"touch {marker}", hide=True)  # nor stops its next tool: it cannot mix commits
        # what git does not track is the clone's, linked: read there and written there
        assert (tree / ".env").read_text() == "VAULT_PASS=local\n"
        assert (tree / "scratch.txt").is_symlink()
        (tree / "collections" / "installed.txt").write_text("by ansible-galaxy\n")
    assert marker.exists()
    entry = repo.journal()[-1]
    assert (entry["result"], entry["commit"], entry["source"]) == ("succeeded", commit, "snapshot")
    assert f"HEAD moved to {pulled[:12]}" in entry["message"]
    assert not tree.exists()  # removed with the apply...
    assert worktrees(repo) == [f"worktree {repo.root}"]  # ...and git's record of it
    assert (repo.root / "collections" / "installed.txt").read_text() == "by ansible-galaxy\n"
    assert (repo.root / "collections/ansible_collections/homelab/tools/MANIFEST.json").exists()  # links only
    assert (repo.root / ".env").exists()
    assert source_root(c) == repo.root


def test_the_snapshot_is_removed_when_the_apply_fails(repo: Repo) -> None:
    made: list[Path] = []

    def failing() -> None:
        with applying(repo.context(), HOSTS, task="hosts.provision") as record:
            made.append(record.snapshot())
            raise Exit("ansible-playbook exited 2", code=2)

    with pytest.raises(Exit):
        failing()
    (tree,) = made
    assert repo.journal()[-1]["result"] == "failed"
    assert not tree.exists()
    assert worktrees(repo) == [f"worktree {repo.root}"]


def test_an_allowed_dirty_apply_runs_from_the_working_tree_and_keeps_the_head_check(repo: Repo) -> None:
    repo.write(ROLE, "- name: edited, not committed\n  ansible.builtin.debug: {}\n")
    c = repo.context()

    def pulled_mid_run() -> None:
        with applying(c, HOSTS, task="hosts.provision", allow_dirty=True) as record:
            assert record.snapshot() == repo.root  # the uncommitted edit is what the operator chose to apply
            repo.change("README.md", "a pull landed")
            shell.run(c, "true", hide=True)

    with pytest.raises(Exit) as info:
        pulled_mid_run()
    assert "HEAD moved" in str(info.value.message)
    entry = repo.journal()[-1]
    assert (entry["result"], entry["source"], entry["dirty"]) == ("failed", "working tree", True)


def test_a_snapshot_left_by_a_killed_apply_is_removed_by_the_next_apply_of_the_layer(repo: Repo) -> None:
    c = repo.context()
    trees = repo.locks / "trees"
    left = snapshot.make(c, repo.root.resolve(), repo.head(), trees / "hosts-0123456789abcdef")
    other_layer = snapshot.make(c, repo.root.resolve(), repo.head(), trees / "tailnet-0123456789abcdef")
    assert len(worktrees(repo)) == 3
    with applying(c, HOSTS, task="hosts.provision") as record:
        record.snapshot()
    assert not left.tree.exists()
    assert (repo.root / ".env").exists()  # its links were removed, not what they point to
    assert other_layer.tree.exists()  # another layer's tree may still be in use: its own next apply clears it
    assert worktrees(repo) == [f"worktree {repo.root}", f"worktree {other_layer.tree}"]


def test_a_snapshot_that_cannot_be_made_refuses_before_anything_runs(repo: Repo, tmp_path: Path) -> None:
    repo.locks.mkdir(parents=True, exist_ok=True)
    (repo.locks / "trees").write_text("a file where the trees go\n")
    marker = tmp_path / "tool-ran"
    c = repo.context()

    def apply() -> None:
        with applying(c, HOSTS, task="hosts.provision") as record:
            record.snapshot()
            shell.run(c, f"touch {marker}", hide=True)

    with pytest.raises(Exit) as info:
        apply()
    assert "Cannot make a snapshot of commit" in str(info.value.message)
    assert not marker.exists()
    assert repo.journal()[-1]["result"] == "refused"


def test_links_never_take_in_the_trees_own_directory(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    entries = [".env", ".blumeops/", "collections/", "pulumi/venv/"]
    # a lock_dir inside the clone's ignored state dir: the state dir holds the trees and is not linked
    assert snapshot.links_to_make(entries, clone, clone / ".blumeops" / "locks" / "k" / "trees") == [
        ".env",
        "collections",
        "pulumi/venv",
    ]
    assert snapshot.links_to_make(entries, clone, tmp_path / "elsewhere" / "trees") == [
        ".env",
        ".blumeops",
        "collections",
        "pulumi/venv",
    ]


def test_a_role_kept_as_a_submodule_is_the_clones_checkout_of_it(repo: Repo, tmp_path: Path) -> None:
    """A worktree leaves each submodule an empty directory: the snapshot links the clone's checkout,
    which the git-state guard compared with the commit (a submodule at another commit is dirty)."""
    role = Repo(tmp_path / "role-repo")
    role.write("tasks/main.yml", "- name: from the submodule\n  ansible.builtin.debug: {}\n")
    role.commit("a role in its own repository")
    repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(role.root), "roles/shared")
    repo.commit("the shared role as a submodule")
    repo.push()
    with applying(repo.context(), HOSTS, task="hosts.provision") as record:
        tree = record.snapshot()
        assert (tree / "roles/shared/tasks/main.yml").read_text().startswith("- name: from the submodule")
    assert repo.journal()[-1]["result"] == "succeeded"
    assert (repo.root / "roles/shared/tasks/main.yml").exists()  # the link went, the checkout stays
    assert not tree.exists()


def test_ansible_roles_path_follows_the_apply_into_its_snapshot(repo: Repo, tmp_path: Path) -> None:
    from blumeops_tasks.hosts.project import roles_path_env

    c = repo.context()
    environ = {"ANSIBLE_ROLES_PATH": f"{repo.root / 'roles'}:vendor/roles:{tmp_path / 'elsewhere'}"}
    assert roles_path_env(c, environ) == {}  # no snapshot: Ansible reads the clone, as asked
    with applying(c, HOSTS, task="hosts.provision") as record:
        tree = record.snapshot()
        moved = roles_path_env(c, environ)["ANSIBLE_ROLES_PATH"].split(":")
    assert moved == [str(tree / "roles"), str(tree / "vendor/roles"), str(tmp_path / "elsewhere")]
