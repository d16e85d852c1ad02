"""The root namespace through real `inv` subprocesses, and a light startup path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from blumeops_tasks import layers
from tests.conftest import REPO, run_inv

HEAVY = (
    "pulumi",
    "pulumi_tailscale",
    "kubernetes",
    "kubernetes_validate",
    "ansible",
    "fabric",
    "paramiko",
    "rich",
    "json5",
    "dotenv",
    "kmock",
)  # yaml is not listed: invoke itself imports it


def test_list_shows_root_tasks_and_one_collection_per_layer() -> None:
    result = run_inv("--list")
    assert result.returncode == 0, result.stderr
    for name in ("check", "preflight", "plan", "config"):
        assert f"\n  {name} " in result.stdout
    for layer in layers.names():
        assert f"  {layer}." in result.stdout, f"collection {layer} missing from inv --list"


def test_every_task_explains_itself() -> None:
    listing = json.loads(run_inv("--list", "--list-format=json").stdout)

    def walk(collection: dict) -> list[dict]:  # type: ignore[type-arg]
        found = list(collection["tasks"])
        for sub in collection["collections"]:
            found += walk(sub)
        return found

    tasks = walk(listing)
    assert tasks
    assert [t["name"] for t in tasks if not t["help"]] == []


def test_startup_imports_no_heavy_library() -> None:
    probe = (
        "import sys; from invoke.main import program; "
        "program.run(['inv', '--list'], exit=False); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_check_runs_offline_and_reports_every_layer() -> None:
    # This repo's own CI holds it to its house rules: blumeops.lint.strict turns their warnings into failures.
    result = run_inv("check", "--json", env={**os.environ, "INVOKE_BLUMEOPS_LINT_STRICT": "1"})
    document = json.loads(result.stdout)
    assert result.returncode == document["exit_code"]
    assert {row["layer"] for row in document["checks"]} == set(layers.names())
    failing = [f"{r['layer']}/{r['name']}: {r['detail']}" for r in document["checks"] if r["status"] == "fail"]
    assert failing == [], "the shipped repo must pass its own offline checks, house rules included"
    assert [r["name"] for r in document["checks"] if r["status"] == "warn"] == []
    assert result.returncode == 0


def test_unknown_layer_is_one_sentence_with_a_suggestion() -> None:
    result = run_inv("plan", "--layer=host")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Unknown layer 'host' (did you mean hosts?); known layers: tailnet, hosts, argocd."
    )


def test_no_task_has_a_short_flag() -> None:
    """One CLI grammar: a flag letter would mean --limit in one task and --layer in another."""
    listing = json.loads(run_inv("--list", "--list-format=json").stdout)

    def names(collection: dict, prefix: str = "") -> list[str]:  # type: ignore[type-arg]
        found = [prefix + t["name"] for t in collection["tasks"]]
        for sub in collection["collections"]:
            found += names(sub, prefix + sub["name"] + ".")
        return found

    for name in names(listing):
        helptext = run_inv("--help", name).stdout
        flags = [line.split()[0] for line in helptext.splitlines() if line.strip().startswith("-")]
        assert all(flag.startswith("--") for flag in flags), f"{name} has short flags: {flags}"


def test_json_error_is_one_document_on_stdout() -> None:
    result = run_inv("history", "--json", "--layer=host")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1
    assert "Unknown layer 'host'" in document["error"]
    assert "Unknown layer 'host'" in result.stderr


def test_json_success_has_the_shared_top_level_shape() -> None:
    document = json.loads(run_inv("config", "--json").stdout)
    assert (document["exit_code"], document["error"]) == (0, None)
