"""`inv rollback` on real git: one commit, only the layer's files, journal entries as destinations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from blumeops_tasks.loop import rollback
from tests.conftest import clean_environ, run_inv
from tests.gitops.helpers import GIT_IDENTITY, INITIAL_FILES, Repo


def names_in(repo: Repo, rev: str) -> list[str]:
    return sorted(repo.git("show", "--name-only", "--format=", rev).split())


def write_journal(repo: Repo, *entries: dict[str, object]) -> None:
    repo.state.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(entry) + "\n" for entry in entries)
    (repo.state / "journal.jsonl").write_text(text, encoding="utf-8")


def entry(commit: str, time: str, result: str = "succeeded", layer: str = "hosts") -> dict[str, object]:
    return {
        "time": time,
        "user": "op",
        "machine": "m",
        "layer": layer,
        "task": f"{layer}.apply",
        "commit": commit,
        "result": result,
    }


def diverge(repo: Repo) -> str:
    """After the initial commit: a role changed, a role file gained, one deleted, plus changes elsewhere."""
    base = repo.head()
    repo.change("roles/caddy/tasks/main.yml", "caddy: new listener", "- name: caddy v2\n")
    repo.change("roles/ntp/tasks/main.yml", "ntp role", "- name: ntp\n")
    repo.git("rm", "-q", "roles/borgmatic/tasks/main.yml")
    repo.commit("drop borgmatic")
    repo.change("README.md", "docs after", "# later docs\n")
    repo.change("pulumi/__main__.py", "tailnet after", "print('later')\n")
    repo.push()
    return base


def test_rollback_to_a_commit_restores_only_the_layer(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    base = diverge(repo)
    before = repo.head()
    rollback.run(repo.context(), layer_name="hosts", to=base[:10], yes=True, preview=False)
    assert repo.git("rev-parse", "HEAD~1").strip() == before  # exactly one new commit
    assert names_in(repo, "HEAD") == [
        "roles/borgmatic/tasks/main.yml",
        "roles/caddy/tasks/main.yml",
        "roles/ntp/tasks/main.yml",
    ]
    assert (repo.root / "roles/caddy/tasks/main.yml").read_text() == INITIAL_FILES["roles/caddy/tasks/main.yml"]
    assert (repo.root / "roles/borgmatic/tasks/main.yml").read_text() == INITIAL_FILES["roles/borgmatic/tasks/main.yml"]
    assert not (repo.root / "roles/ntp").exists()  # gained since: removed
    assert (repo.root / "README.md").read_text() == "# later docs\n"  # other layers and files untouched
    assert (repo.root / "pulumi/__main__.py").read_text() == "print('later')\n"
    assert repo.git("status", "--porcelain") == ""
    message = repo.git("log", "-1", "--format=%B")
    assert f"Blumeops-Rollback: layer=hosts to={base}" in message
    out = capsys.readouterr().out
    assert "git push" in out
    # the exact apply commands for what the commit changed (as `inv affected` maps them)
    assert "inv hosts.provision --host=indri --tags borgmatic,caddy" in out


def test_refuses_a_dirty_layer_but_not_dirt_elsewhere(repo: Repo) -> None:
    base = diverge(repo)
    head = repo.head()
    repo.write("inventory/host_vars/indri.yml", "caddy_port: 8443\n")
    with pytest.raises(Exit) as info:
        rollback.run(repo.context(), layer_name="hosts", to=base, yes=True, preview=False)
    assert info.value.code == 1
    assert "inventory/host_vars/indri.yml" in str(info.value.message)
    assert repo.head() == head

    repo.git("checkout", "--", "inventory/host_vars/indri.yml")
    repo.write("README.md", "# unrelated, uncommitted\n")
    repo.write("pulumi/__main__.py", "print('staged elsewhere')\n")
    repo.git("add", "pulumi/__main__.py")
    rollback.run(repo.context(), layer_name="hosts", to=base, yes=True, preview=False)
    assert all(name.startswith("roles/") for name in names_in(repo, "HEAD"))
    # the other work is still there, uncommitted, and the staged file is still staged
    assert (repo.root / "README.md").read_text() == "# unrelated, uncommitted\n"
    assert repo.git("diff", "--cached", "--name-only").split() == ["pulumi/__main__.py"]


def test_destination_from_journal_index_and_time(repo: Repo) -> None:
    base = repo.head()
    middle = repo.change("roles/caddy/tasks/main.yml", "caddy v2", "- name: caddy v2\n")
    repo.change("roles/caddy/tasks/main.yml", "caddy v3", "- name: caddy v3\n")
    repo.push()
    write_journal(
        repo,
        entry(base, "2026-11-20T10:00:00Z"),
        entry(middle, "2026-11-21T10:00:00Z"),
        entry(middle, "2026-11-21T11:00:00Z", layer="tailnet"),
        entry(repo.head(), "2026-11-22T10:00:00Z", result="failed"),
    )
    c = repo.context()
    root = repo.root
    # index: the Nth newest entry of `inv history --layer=hosts`
    assert rollback.resolve_destination(c, root, "hosts", "1").commit == repo.head()
    assert rollback.resolve_destination(c, root, "hosts", "2").commit == middle
    assert rollback.resolve_destination(c, root, "hosts", "3").commit == base
    # time prefix of an entry
    found = rollback.resolve_destination(c, root, "hosts", "2026-11-20")
    assert (found.commit, found.entry and found.entry["time"]) == (base, "2026-11-20T10:00:00Z")
    with pytest.raises(Exit) as info:
        rollback.resolve_destination(c, root, "hosts", "4")
    assert "lists 1 to 3" in str(info.value.message)
    with pytest.raises(Exit) as info:
        rollback.resolve_destination(c, root, "hosts", "2026-11-2")
    assert "3 hosts journal entries" in str(info.value.message)
    assert rollback.entry_warnings(entry(base, "t", result="failed"))  # a failed apply is said

    rollback.run(c, layer_name="hosts", to="2", yes=True, preview=False)
    assert (repo.root / "roles/caddy/tasks/main.yml").read_text() == "- name: caddy v2\n"
    assert "(2026-11-21T10:00:00Z hosts.apply succeeded)" in repo.git("log", "-1", "--format=%B")


def test_unknown_destinations_are_one_sentence(repo: Repo) -> None:
    write_journal(repo, entry("f" * 40, "2026-11-20T10:00:00Z"))
    c = repo.context()
    with pytest.raises(Exit) as info:
        rollback.resolve_destination(c, repo.root, "hosts", "1")
    assert "not in this clone" in str(info.value.message)
    with pytest.raises(Exit) as info:
        rollback.resolve_destination(c, repo.root, "hosts", "no-such-branch")
    assert "names no commit" in str(info.value.message)


def test_nothing_to_roll_back(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    base = repo.head()
    repo.change("README.md", "docs only")
    rollback.run(repo.context(), layer_name="hosts", to=base, yes=True, preview=False)
    assert repo.git("log", "-1", "--format=%s").strip() == "docs only"
    assert "nothing to commit" in capsys.readouterr().out


def test_inv_rollback_end_to_end(repo: Repo, isolated_env: Path) -> None:
    base = diverge(repo)
    settings = {"INVOKE_BLUMEOPS_ROOT": str(repo.root), "INVOKE_BLUMEOPS_STATE_DIR": str(repo.state)}
    env = clean_environ(isolated_env, {**settings, **GIT_IDENTITY})
    head = repo.head()
    refused = run_inv("rollback", "--layer=hosts", f"--to={base}", env=env)  # no terminal, no --yes
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    assert repo.head() == head
    assert repo.git("status", "--porcelain") == ""

    done = run_inv("rollback", "--layer=tailnet", f"--to={base}", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert names_in(repo, "HEAD") == ["pulumi/__main__.py"]
    assert "Live preview not run" in done.stderr  # no pulumi CLI here: the diff stat stands in
    assert "pulumi/__main__.py" in done.stdout
    assert "inv tailnet.up" in done.stdout
    assert "Traceback" not in done.stderr

    bad = run_inv("rollback", "--layer=hostz", "--to=1", env=env)
    assert bad.returncode == 1
    assert "did you mean hosts?" in bad.stderr
