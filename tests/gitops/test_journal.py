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
