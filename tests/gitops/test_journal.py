"""Journal encoding, reading and selection; its location is config."""

from __future__ import annotations

import json
from pathlib import Path

from blumeops_tasks.gitops import journal
from blumeops_tasks.gitops.session import applying
from tests.gitops.helpers import HOSTS, Repo


def test_encode_orders_fields_and_redacts() -> None:
    env = {"MY_API_TOKEN": "sekrit-value-1"}
    line = journal.encode({"extra": 1, "result": "failed", "time": "T", "message": "got sekrit-value-1"}, env)
    assert line.endswith("\n")
    assert list(json.loads(line)) == ["time", "result", "message", "extra"]
    assert "sekrit-value-1" not in line
    assert json.loads(line)["message"] == "got ***"


def test_parse_select_and_last_success() -> None:
    lines = [
        json.dumps({"layer": "hosts", "result": "succeeded", "commit": "a"}),
        "garbage",
        json.dumps([1, 2]),
        "",
        json.dumps({"layer": "tailnet", "result": "succeeded", "commit": "b"}),
        json.dumps({"layer": "hosts", "result": "no-changes", "commit": "c"}),
        json.dumps({"layer": "hosts", "result": "failed", "commit": "d"}),
    ]
    entries, bad = journal.parse_lines(lines)
    assert bad == 2
    assert [e["commit"] for e in journal.select(entries)] == ["d", "c", "b", "a"]
    assert [e["commit"] for e in journal.select(entries, "hosts", 2)] == ["d", "c"]
    assert [e["commit"] for e in journal.select(entries, limit=0)] == ["d", "c", "b", "a"]
    last = journal.last_success(entries, "hosts")
    assert last is not None
    assert last["commit"] == "c"
    assert journal.last_success(entries, "argocd") is None


def test_journal_location_is_config(repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "audit" / "applies.jsonl"
    with applying(repo.context(journal=str(elsewhere)), HOSTS, task="hosts.provision"):
        pass
    lines = [json.loads(line) for line in elsewhere.read_text(encoding="utf-8").splitlines()]
    assert [line["result"] for line in lines] == ["started", "succeeded"]
    assert lines[0]["apply_id"] == lines[1]["apply_id"]
    assert not (repo.state / "journal.jsonl").exists()
    with applying(repo.context(journal="sub/j.jsonl"), HOSTS, task="hosts.provision"):
        pass
    assert (repo.state / "sub" / "j.jsonl").is_file()


# ---- durability and unreadable lines ------------------------------------------------------------


def test_a_truncated_last_line_never_swallows_the_next_entry(repo: Repo) -> None:
    repo.state.mkdir(parents=True)
    path = repo.state / "journal.jsonl"
    path.write_text('{"layer":"hosts","result":"succeeded","commit":"a"}\n{"layer":"hosts","resu', encoding="utf-8")
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
        pass
    entries, bad = journal.read(path)
    assert bad == 1  # the cut line, alone on its line
    assert [e["result"] for e in entries] == ["succeeded", "succeeded"]
    assert entries[-1]["targets"] == ["indri"]


def test_binary_garbage_is_counted_and_skipped(repo: Repo, isolated_env: Path) -> None:
    from tests.conftest import run_inv
    from tests.gitops.test_tasks import inv_env

    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
        pass
    path = repo.state / "journal.jsonl"
    with path.open("ab") as handle:
        handle.write(b"\xff\xfe\x00garbage\x80\n\x00\x00\x00\nnot json\n[1,2]\n")
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["sifaka"]):
        pass
    entries, bad = journal.read(path)
    assert bad == 4
    assert [e["targets"] for e in entries] == [["indri"], ["sifaka"]]
    env = inv_env(repo, isolated_env)
    history = run_inv("history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    document = json.loads(history.stdout)
    assert document["skipped_lines"] == 4
    assert [e["targets"] for e in document["entries"]] == [["sifaka"], ["indri"]]
    pending = run_inv("pending", "--layer=hosts", "--json", env=env)
    assert pending.returncode in {0, 2}, pending.stderr
    text = run_inv("history", env=env)
    assert text.returncode == 0
    assert "4 unreadable line(s)" in text.stderr + text.stdout


def test_reverse_lines_crosses_block_boundaries() -> None:
    lines = [f'{{"n":{n},"pad":"{"x" * (n % 37)}"}}'.encode() for n in range(500)]
    data = b"\n".join(lines) + b"\n"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.jsonl"
        path.write_bytes(data)
        got = [line for line in journal.reverse_lines(path, block=64) if line]
    assert got == list(reversed(lines))


def test_history_limit_reads_from_the_end_fast(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    line = {
        "time": "2026-11-26T04:20:00Z",
        "layer": "hosts",
        "task": "hosts.provision",
        "targets": ["indri", "sifaka"],
        "commit": "a" * 40,
        "result": "succeeded",
        "exit_code": 0,
        "message": "x" * 200,
    }
    text = json.dumps(line) + "\n"
    path.write_text(text * 100_000, encoding="utf-8")
    import time

    started = time.perf_counter()
    scan = journal.newest(path, "hosts", 20)
    took = time.perf_counter() - started
    assert len(scan.entries) == 20
    assert took < 0.05, f"history --limit 20 took {took:.3f}s on 100k lines"
    started = time.perf_counter()
    found, _bad = journal.baselines(path, {"hosts": ["indri", "sifaka"]})
    took = time.perf_counter() - started
    assert found.baseline("hosts", "sifaka") is not None
    assert took < 0.05, f"pending's scan took {took:.3f}s on 100k lines"


def test_an_unwritable_state_directory_refuses_before_the_body(repo: Repo, tmp_path: Path) -> None:
    import pytest
    from invoke.exceptions import Exit

    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    ran = []
    context = repo.context(state_dir=str(blocker / "state"))
    with pytest.raises(Exit) as info, applying(context, HOSTS, task="hosts.provision"):
        ran.append(True)
    assert info.value.code == 1
    assert "Cannot write the apply journal" in str(info.value.message)
    assert "nothing was applied" in str(info.value.message)
    assert ran == []
