"""The journal as shared memory: git notes on the applied commit, pushed to a real bare remote and
read by another real clone (real git, real `inv` subprocesses)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import Exit

from blumeops_tasks.gitops import git_state, journal, notes
from blumeops_tasks.gitops.session import applying
from tests.conftest import clean_environ, run_inv
from tests.gitops.helpers import GIT_IDENTITY, HOSTS, TAILNET, Repo


def inv_env(repo: Repo, home: Path, **extra: str) -> dict[str, str]:
    return clean_environ(
        home,
        {
            "INVOKE_BLUMEOPS_ROOT": str(repo.root),
            "INVOKE_BLUMEOPS_STATE_DIR": str(repo.state),
            "XDG_STATE_HOME": str(repo.state.parent / "xdg"),
            **GIT_IDENTITY,
            **extra,
        },
    )


def inv_json(repo: Repo, home: Path, *args: str, code: int = 0, **extra: str) -> dict[str, Any]:
    done = run_inv(*args, "--json", env=inv_env(repo, home, **extra))
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def remote_note(repo: Repo, commit: str) -> list[dict[str, Any]]:
    """The entries the bare remote holds in `commit`'s note."""
    text = repo.git(f"--git-dir={repo.remote}", "notes", f"--ref={notes.NOTES_REF}", "show", commit)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def remote_notes_ref(repo: Repo) -> str:
    return repo.git("ls-remote", str(repo.remote), notes.NOTES_REF).split("\t")[0]


def unpublished(repo: Repo) -> list[str]:
    state = notes.load_state(repo.state / notes.STATE_NAME)
    return [item["apply_id"] for item in state.get("unpublished") or []]


@pytest.fixture
def second(repo: Repo, tmp_path: Path) -> Repo:
    """Clone B of the remote clone A (`repo`) pushes to."""
    return Repo.clone_of(repo, tmp_path / "b")


def test_an_apply_in_one_clone_is_seen_by_history_and_pending_in_another_after_a_fetch(
    repo: Repo, second: Repo, isolated_env: Path
) -> None:
    with applying(repo.context(), HOSTS, task="hosts.provision"):  # the whole layer, at the shared HEAD
        pass
    (entry,) = repo.journal()
    assert unpublished(repo) == []  # pushed right after the apply
    assert [e["apply_id"] for e in remote_note(repo, repo.head())] == [entry["apply_id"]]
    mine = inv_json(repo, isolated_env, "history")
    assert [(e["apply_id"], e["shared"]) for e in mine["entries"]] == [(entry["apply_id"], "published")]

    # B has not fetched the notes: it knows nothing of A's apply, and says so
    assert inv_json(second, isolated_env, "history")["entries"] == []
    before = inv_json(second, isolated_env, "pending", "--layer=hosts", code=2)
    assert before["layers"][0]["state"] == "never-applied"

    fetched = inv_json(second, isolated_env, "history", "--fetch")
    assert [(e["apply_id"], e["shared"], e["result"]) for e in fetched["entries"]] == [
        (entry["apply_id"], "notes-only", "succeeded")
    ]
    assert fetched["notes"]["fetched"]
    assert fetched["notes"]["problems"] == []
    after = inv_json(second, isolated_env, "pending", "--layer=hosts")  # exit 0: A's apply is B's baseline
    hosts = after["layers"][0]
    assert hosts["state"] == "up-to-date"
    assert {t["target"]: t["last_apply"]["apply_id"] for t in hosts["targets"]} == {
        "indri": entry["apply_id"],
        "sifaka": entry["apply_id"],
    }
    human = run_inv("history", env=inv_env(second, isolated_env))
    assert "via notes" in human.stdout

    # pending --fetch works on its own too: a tailnet apply in A is B's baseline after it
    with applying(repo.context(), TAILNET, task="tailnet.up", targets=["tailnet"]):
        pass
    tailnet = inv_json(second, isolated_env, "pending", "--layer=tailnet", "--fetch")
    assert tailnet["layers"][0]["state"] == "up-to-date"


def test_a_plain_git_fetch_with_the_documented_refspec_brings_the_notes(
    repo: Repo, second: Repo, isolated_env: Path
) -> None:
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    (entry,) = repo.journal()
    second.git("config", "--add", "remote.origin.fetch", f"+{notes.NOTES_REF}:{notes.FETCHED_REF}")
    second.git("fetch", "-q")
    shown = inv_json(second, isolated_env, "history")  # no --fetch: the fetched copy is merged
    assert [(e["apply_id"], e["shared"]) for e in shown["entries"]] == [(entry["apply_id"], "notes-only")]
    assert second.git("rev-parse", notes.NOTES_REF) == repo.git("rev-parse", notes.NOTES_REF)


def test_a_push_to_an_unreachable_remote_leaves_the_entry_unpublished_until_a_later_task(
    repo: Repo, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(repo.remote)
    repo.git("remote", "set-url", "origin", str(repo.state.parent / "gone.git"))
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    (entry,) = repo.journal()
    assert entry["result"] == "succeeded"  # the apply itself is not failed by the push
    assert "Could not push the journal notes to origin" in capsys.readouterr().err
    assert unpublished(repo) == [entry["apply_id"]]
    assert remote_notes_ref(repo) == ""
    assert [json.loads(line)["apply_id"] for line in repo.git("notes", "--ref=blumeops", "show").splitlines()] == [
        entry["apply_id"]
    ]  # the note is written locally all the same

    shown = inv_json(repo, isolated_env, "history")  # retries the push, fails again, shows it unpublished
    assert [(e["apply_id"], e["shared"]) for e in shown["entries"]] == [(entry["apply_id"], "unpublished")]
    assert shown["notes"]["unpublished"] == 1
    assert "Could not push the journal notes" in shown["notes"]["problems"][0]
    human = run_inv("history", env=inv_env(repo, isolated_env))
    assert human.returncode == 0
    assert "unpublished" in human.stdout

    repo.git("remote", "set-url", "origin", url)  # the remote is back: the next task publishes
    trace = repo.state.parent / "git-trace.txt"
    published = inv_json(repo, isolated_env, "history", GIT_TRACE=str(trace))
    assert [(e["apply_id"], e["shared"]) for e in published["entries"]] == [(entry["apply_id"], "published")]
    assert unpublished(repo) == []
    assert remote_notes_ref(repo) == repo.git("rev-parse", notes.NOTES_REF).strip()
    assert "git push" in trace.read_text(encoding="utf-8")

    # nothing pending: no push, no fetch, not even towards a broken remote
    repo.git("remote", "set-url", "origin", str(repo.state.parent / "gone.git"))
    trace.unlink()
    quiet = run_inv("history", env=inv_env(repo, isolated_env, GIT_TRACE=str(trace)))
    assert quiet.returncode == 0
    assert "Could not" not in quiet.stderr
    commands = trace.read_text(encoding="utf-8")
    assert "git push" not in commands
    assert "git fetch" not in commands


def test_a_hanging_push_is_cut_by_the_timeout_and_its_whole_group_killed(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pidfile = repo.state.parent / "ssh.pid"
    fake_ssh = repo.state.parent / "fake-ssh"
    fake_ssh.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n", encoding="utf-8")
    fake_ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    repo.git("remote", "set-url", "--push", "origin", "ssh://blackhole.invalid/blumeops.git")
    started = time.monotonic()
    with applying(repo.context(notes={"timeout": 1}), HOSTS, task="hosts.provision"):
        pass
    took = time.monotonic() - started
    assert took < 8, f"the apply waited {took:.1f}s for a hanging push"
    assert "timed out after 1 s" in capsys.readouterr().err
    (entry,) = repo.journal()
    assert entry["result"] == "succeeded"
    assert unpublished(repo) == [entry["apply_id"]]
    ssh = int(pidfile.read_text(encoding="utf-8").strip())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(ssh, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(ssh, 9)  # ours: never leave it behind
        pytest.fail(f"the push's ssh (pid {ssh}) outlived the timeout")


def test_notes_of_two_clones_on_the_same_commit_both_survive(
    repo: Repo, second: Repo, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = repo.head()
    assert second.head() == commit
    for clone in (repo, second):  # both apply the same commit while the remote is unreachable
        clone.git("remote", "set-url", "origin", str(clone.state.parent / "gone.git"))
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
        pass
    with applying(second.context(), HOSTS, task="hosts.provision", targets=["sifaka"]):
        pass
    (mine,), (theirs,) = repo.journal(), second.journal()
    capsys.readouterr()
    for clone in (repo, second):  # the remote is back; A publishes first, then B (rejected, merges, pushes)
        clone.git("remote", "set-url", "origin", str(repo.remote))
        assert notes.publish(clone.context(), clone.root) is None
        assert unpublished(clone) == []
    assert sorted(e["apply_id"] for e in remote_note(repo, commit)) == sorted([mine["apply_id"], theirs["apply_id"]])

    both = inv_json(repo, isolated_env, "history", "--fetch")  # A sees B's apply, and its own as published
    shared = {e["apply_id"]: e["shared"] for e in both["entries"]}
    assert shared == {mine["apply_id"]: "published", theirs["apply_id"]: "notes-only"}
    pending = inv_json(repo, isolated_env, "pending", "--layer=hosts")  # indri by A, sifaka by B
    assert {t["target"]: (t["state"], t["last_apply"]["apply_id"]) for t in pending["layers"][0]["targets"]} == {
        "indri": ("up-to-date", mine["apply_id"]),
        "sifaka": ("up-to-date", theirs["apply_id"]),
    }

    # a later apply in A appends to the merged note: every line survives, none twice
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
        pass
    ids = [e["apply_id"] for e in remote_note(repo, commit)]
    assert len(ids) == len(set(ids)) == 3


def test_notes_hold_redacted_entries_and_refusals_but_no_started_line(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "tskey-planted-note-42"
    monkeypatch.setenv("TAILSCALE_API_KEY", secret)
    with applying(repo.context(), TAILNET, task="tailnet.up") as record:
        record.note(f"used {secret}")
    repo.write("pulumi/__main__.py", "print('dirty')\n")
    with pytest.raises(Exit) as refused, applying(repo.context(), TAILNET, task="tailnet.up"):
        pass
    assert "uncommitted changes" in str(refused.value.message)
    text = repo.git(f"--git-dir={repo.remote}", "notes", "--ref=blumeops", "show", repo.head())
    assert secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["result"] for e in entries] == ["succeeded", "refused"]
    assert entries[0]["message"] == "used ***"
    assert [e["result"] for e in repo.journal_lines()] == ["started", "succeeded", "refused"]


# ---- reading: cost and order ---------------------------------------------------------------------


def test_notes_are_read_newest_first_a_page_at_a_time(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        repo.change("README.md", f"docs {n}")
        repo.push()
        with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
            pass
    applied = [e["apply_id"] for e in reversed(repo.journal())]
    head = repo.git("rev-parse", notes.NOTES_REF).strip()
    calls: list[str] = []
    real = git_state.git

    def counting(c: Any, root: Path, args: str, **kw: Any) -> tuple[int, str, str]:
        calls.append(args)
        return real(c, root, args, **kw)

    monkeypatch.setattr(git_state, "git", counting)
    stream = notes.entries(repo.context(), repo.root, head, page=2)
    first = [next(stream)["apply_id"] for _ in range(3)]  # type: ignore[index]
    assert first == applied[:3]
    assert len(calls) == 2  # two pages of two notes commits: the rest is never read
    assert [e["apply_id"] for e in stream if e] == applied[3:]

    # history --limit 2 over journal + notes: the newest two, each once, seen in both
    scan = journal.newest(
        repo.state / "journal.jsonl", None, 2, shared=notes.entries(repo.context(), repo.root, head, page=2)
    )
    assert [e["apply_id"] for e in scan.entries] == applied[:2]
    assert scan.sources[applied[0]] == scan.sources[applied[1]] == {"journal", "notes"}


def test_history_limit_reads_one_page_of_a_long_notes_history(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(150):  # 150 notes commits, one entry each, a minute apart
        line = {"apply_id": f"id{n:03}", "time": f"2026-11-26T{n // 60:02}:{n % 60:02}:00Z", "layer": "hosts"}
        repo.git("notes", f"--ref={notes.NOTES_REF}", "append", "-m", json.dumps(line), "HEAD")
    head = repo.git("rev-parse", notes.NOTES_REF).strip()
    calls: list[str] = []
    real = git_state.git

    def counting(c: Any, root: Path, args: str, **kw: Any) -> tuple[int, str, str]:
        calls.append(args)
        return real(c, root, args, **kw)

    monkeypatch.setattr(git_state, "git", counting)
    scan = journal.newest(repo.state / "journal.jsonl", None, 20, shared=notes.entries(repo.context(), repo.root, head))
    assert [e["apply_id"] for e in scan.entries] == [f"id{n:03}" for n in range(149, 129, -1)]
    assert calls == [f"{notes.LOG_ARGS} --skip=0 -n {notes.PAGE} {head}"]  # one page, never the whole history


def test_parse_patches_counts_moved_notes_as_nothing_new() -> None:
    text = (
        "\x1eaaa\n\ndiff --git a/ab/cdef b/ab/cdef\nnew file mode 100644\n--- /dev/null\n+++ b/ab/cdef\n"
        '@@ -0,0 +1,2 @@\n+{"apply_id":"old"}\n+{"apply_id":"new"}\n'
        "diff --git a/abcdef b/abcdef\ndeleted file mode 100644\n--- a/abcdef\n+++ /dev/null\n"
        '@@ -1 +0,0 @@\n-{"apply_id":"old"}\n'
        '\x1ebbb\n\ndiff --git a/abcdef b/abcdef\n--- /dev/null\n+++ b/abcdef\n@@ -0,0 +1 @@\n+{"apply_id":"old"}\n'
    )
    assert notes.parse_patches(text) == [['{"apply_id":"new"}'], ['{"apply_id":"old"}']]


def test_merged_orders_by_end_time_and_yields_each_apply_once() -> None:
    local = [
        {"apply_id": "b", "time": "2026-11-26T04:30:00Z", "duration_s": 5},
        None,
        {"apply_id": "a", "time": "2026-11-26T04:00:00Z", "duration_s": 1},
    ]
    shared = [
        {"apply_id": "c", "time": "2026-11-26T04:20:00Z", "duration_s": 600},  # ended 04:30:00, before b
        {"apply_id": "a", "time": "2026-11-26T04:00:00Z", "duration_s": 1},
    ]
    scan = journal.Scan([])
    assert [e["apply_id"] for e in journal.merged(scan, local, shared)] == ["b", "c", "a"]
    assert scan.bad == 1
    assert scan.sources == {"a": {"journal", "notes"}, "b": {"journal"}, "c": {"notes"}}
    marks = {"a": "published", "b": "unpublished", "c": "notes-only", "": "local-only"}
    for apply_id, expected in marks.items():
        assert notes.shared_state({"apply_id": apply_id}, scan.sources, {"b"}) == expected
