"""history, pending, affected and unlock on crafted git histories (real git, real journal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from blumeops_tasks import layers
from blumeops_tasks.gitops.session import applying, lock_directory
from blumeops_tasks.gitops.tasks import affected_report, pending_exit_code, pending_report
from tests.conftest import clean_environ, run_inv
from tests.gitops.helpers import GIT_IDENTITY, HOSTS, TAILNET, Repo

APPS = {
    "argocd/root.yaml": "kind: Application\nmetadata: {name: blumeops}\nspec:\n  source: {path: argocd/apps}\n",
    "argocd/apps/grafana.yaml": (
        "kind: Application\nmetadata: {name: grafana}\nspec:\n  source: {path: argocd/manifests/grafana}\n"
    ),
}


def by_layer(report: dict[str, object]) -> dict[str, dict[str, object]]:
    return {item["layer"]: item for item in report["layers"]}  # type: ignore[attr-defined, index]


def shas(item: dict[str, object]) -> list[str]:
    return [c["sha"] for c in item["commits"]]  # type: ignore[attr-defined, index]


def test_pending_since_last_successful_apply(repo: Repo) -> None:
    initial = repo.head()
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    c_role = repo.change("roles/caddy/tasks/main.yml", "caddy: reload on change")
    repo.change("README.md", "docs only")
    c_tail = repo.change("pulumi/__main__.py", "tailnet: tag")
    repo.push()
    report = pending_report(repo.context(), layers.all_layers())
    items = by_layer(report)
    assert report["head"] == c_tail
    assert items["hosts"]["state"] == "pending"
    assert shas(items["hosts"]) == [c_role]
    assert items["hosts"]["last_apply"]["commit"] == initial  # type: ignore[index]
    assert items["tailnet"]["state"] == "never-applied"
    assert shas(items["tailnet"]) == [c_tail, initial]
    assert items["argocd"]["state"] == "never-applied"
    assert pending_exit_code([str(i["state"]) for i in items.values()]) == 2

    # a failed and a declined apply do not move the baseline; a successful one does
    with pytest.raises(Exit), applying(repo.context(), HOSTS, task="hosts.provision"):
        raise Exit("boom", code=2)
    with applying(repo.context(), TAILNET, task="tailnet.up") as record:
        record.mark("no-changes")
    items = by_layer(pending_report(repo.context(), layers.all_layers()))
    assert shas(items["hosts"]) == [c_role]
    assert items["tailnet"]["state"] == "up-to-date"
    assert items["tailnet"]["commits"] == []


def test_pending_lists_uncommitted_and_unknown_commit(repo: Repo) -> None:
    repo.state.mkdir(parents=True)
    entry = {"layer": "argocd", "result": "succeeded", "commit": "f" * 40, "time": "t", "user": "u"}
    (repo.state / "journal.jsonl").write_text(json.dumps(entry) + "\nnot json\n", encoding="utf-8")
    repo.write("inventory/host_vars/indri.yml", "changed: true\n")
    items = by_layer(pending_report(repo.context(), layers.all_layers()))
    assert items["argocd"]["state"] == "unknown-commit"
    assert items["hosts"]["uncommitted"] == ["inventory/host_vars/indri.yml"]
    assert pending_exit_code(["up-to-date", "unknown-commit", "pending"]) == 1
    assert pending_exit_code(["up-to-date", "up-to-date"]) == 0


def test_affected_on_a_crafted_history(repo: Repo) -> None:
    for path, text in APPS.items():
        repo.write(path, text)
    base = repo.commit("argocd: apps")
    repo.change("roles/caddy/templates/Caddyfile.j2", "caddy template")
    repo.change("roles/node_exporter/tasks/main.yml", "node exporter")
    repo.change("inventory/host_vars/indri.yml", "indri vars")
    repo.change("argocd/manifests/grafana/deployment.yaml", "grafana")
    repo.change("argocd/apps/loki/deployment.yaml", "loki by directory")
    repo.change("argocd/apps/grafana.yaml", APPS["argocd/apps/grafana.yaml"].replace("grafana}", "grafana} "))
    repo.git("mv", "pulumi/__main__.py", "pulumi/main.py")
    repo.commit("tailnet: rename")
    repo.change("README.md", "docs")
    report = affected_report(repo.context(), base)
    assert report["base"] == base
    files = {item["path"]: (item["layer"], item["kind"], item["target"]) for item in report["files"]}
    assert files == {
        "README.md": (None, "unmanaged", ""),
        "argocd/apps/grafana.yaml": ("argocd", "app", "blumeops"),
        "argocd/apps/loki/deployment.yaml": ("argocd", "app", "blumeops"),
        "argocd/manifests/grafana/deployment.yaml": ("argocd", "app", "grafana"),
        "inventory/host_vars/indri.yml": ("hosts", "host", "indri"),
        "pulumi/__main__.py": ("tailnet", "layer", ""),
        "pulumi/main.py": ("tailnet", "layer", ""),
        "roles/caddy/templates/Caddyfile.j2": ("hosts", "role", "caddy"),
        "roles/node_exporter/tasks/main.yml": ("hosts", "role", "node_exporter"),
    }
    # playbooks: indri uses caddy + borgmatic, sifaka uses node_exporter + caddy
    assert report["commands"] == {
        "tailnet": ["inv tailnet.up"],
        "hosts": [
            "inv hosts.provision --host=indri",
            "inv hosts.provision --host=sifaka --tags caddy,node_exporter",
        ],
        "argocd": ["inv argocd.sync --app=blumeops", "inv argocd.sync --app=grafana"],
    }


def test_affected_includes_uncommitted_and_refuses_unknown_ref(repo: Repo) -> None:
    repo.write("roles/borgmatic/defaults/main.yml", "x: 1\n")
    report = affected_report(repo.context(), "HEAD")
    assert [(f["path"], f["uncommitted"]) for f in report["files"]] == [("roles/borgmatic/defaults/main.yml", True)]
    assert report["commands"] == {"hosts": ["inv hosts.provision --host=indri --tags borgmatic"]}
    with pytest.raises(Exit) as info:
        affected_report(repo.context(), "no-such-ref")
    assert "'no-such-ref' names no commit" in str(info.value.message)


# ---- the tasks end to end, through a real `inv` subprocess -------------------------------------


def inv_env(repo: Repo, home: Path) -> dict[str, str]:
    return clean_environ(
        home,
        {
            "INVOKE_BLUMEOPS_ROOT": str(repo.root),
            "INVOKE_BLUMEOPS_STATE_DIR": str(repo.state),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            **GIT_IDENTITY,
        },
    )


def test_inv_history_pending_affected_end_to_end(repo: Repo, isolated_env: Path) -> None:
    env = inv_env(repo, isolated_env)
    empty = run_inv("history", env=env)
    assert empty.returncode == 0, empty.stderr
    assert "No applies journaled yet" in empty.stdout

    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
        pass
    with pytest.raises(Exit), applying(repo.context(), TAILNET, task="tailnet.up"):
        raise Exit("pulumi up failed", code=3)
    changed = repo.change("roles/caddy/tasks/main.yml", "caddy change")
    repo.push()

    history = run_inv("history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)["entries"]
    assert [(e["layer"], e["result"], e["exit_code"]) for e in entries] == [
        ("tailnet", "failed", 3),
        ("hosts", "succeeded", 0),
    ]
    one = json.loads(run_inv("history", "--layer=hosts", "--limit=1", "--json", env=env).stdout)
    assert [e["layer"] for e in one["entries"]] == ["hosts"]
    table = run_inv("history", env=env)
    assert "pulumi up failed" in table.stdout
    assert "hosts.provision" in table.stdout

    pending = run_inv("pending", "--json", env=env)
    assert pending.returncode == 2, pending.stderr
    items = {i["layer"]: i for i in json.loads(pending.stdout)["layers"]}
    # indri was applied, sifaka (in the inventory) never was: one host's run does not count for both
    targets = {t["target"]: (t["state"], t["commits"]) for t in items["hosts"]["targets"]}
    assert targets == {"indri": ("pending", 1), "sifaka": ("never-applied", 2)}
    assert items["hosts"]["commits"][0]["sha"] == changed
    human = run_inv("pending", "--layer=hosts", env=env)
    assert human.returncode == 2
    assert "caddy change" in human.stdout
    assert "inv affected --since=" in human.stdout

    affected = run_inv("affected", "--json", env=env)  # default: since HEAD~1
    assert affected.returncode == 0, affected.stderr
    assert json.loads(affected.stdout)["commands"] == {
        "hosts": ["inv hosts.provision --host=indri --tags caddy", "inv hosts.provision --host=sifaka --tags caddy"]
    }
    human_affected = run_inv("affected", env=env)
    assert "inv hosts.provision --host=sifaka --tags caddy" in human_affected.stdout

    bad = run_inv("pending", "--layer=hostz", env=env)
    assert bad.returncode == 1
    assert "did you mean hosts?" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_inv_unlock_clears_only_stale_locks(repo: Repo, isolated_env: Path) -> None:
    env = inv_env(repo, isolated_env)
    free = run_inv("unlock", "--layer=hosts", env=env)
    assert free.returncode == 0
    assert "nothing to clear" in free.stdout
    locks = lock_directory(repo.context(lock_dir=None), repo.root)  # where `inv` keeps them: under HOME
    assert isolated_env in locks.parents
    locks.mkdir(parents=True)
    (locks / "hosts.holder.json").write_text(
        json.dumps({"user": "erich", "machine": "indri", "pid": 999999, "since": "T", "task": "hosts.provision"}),
        encoding="utf-8",
    )
    refused = run_inv("unlock", "--layer=hosts", env=env)  # not held: stale, so it is cleared
    assert refused.returncode == 0, refused.stderr
    assert "Cleared the stale hosts apply lock left by erich@indri pid 999999" in refused.stdout
    assert not (locks / "hosts.holder.json").exists()


def test_history_redacts_what_the_journal_holds(repo: Repo, isolated_env: Path) -> None:
    secret = "tskey-planted-history-42"
    env = {**inv_env(repo, isolated_env), "TAILSCALE_API_KEY": secret}
    repo.state.mkdir(parents=True)
    (repo.state / "journal.jsonl").write_text(
        json.dumps({"layer": "tailnet", "result": "failed", "message": f"old line {secret}"}) + "\n",
        encoding="utf-8",
    )
    out = run_inv("history", "--json", env=env)
    assert secret not in out.stdout
    assert "old line ***" in out.stdout
