"""Honest records: tags, limit and hosts journaled; `pending` per target; the git guard's upstream,
path and HEAD checks; two clones share one lock; the plan digest binds an apply to its review."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from invoke.exceptions import Exit

from blumeops_tasks import layers, shell
from blumeops_tasks.gitops.session import applying
from blumeops_tasks.gitops.tasks import pending_report
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan, digest_matches, short, to_json
from tests.conftest import REPO
from tests.gitops.helpers import ARGOCD, HOSTS, TAILNET, Repo, git_env, make_context


def targets_of(report: dict[str, Any], layer: str) -> dict[str, str]:
    (item,) = [i for i in report["layers"] if i["layer"] == layer]
    return {row["target"]: row["state"] for row in item["targets"]}


def layer_state(report: dict[str, Any], layer: str) -> str:
    (item,) = [i for i in report["layers"] if i["layer"] == layer]
    return str(item["state"])


# ---- tags, limit and hosts ------------------------------------------------------------------------


def test_a_tagged_run_is_journaled_and_never_marks_anything_up_to_date(repo: Repo) -> None:
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"], tags="nosuchtag") as record:
        record.mark("no-changes")
    (entry,) = repo.journal()
    assert (entry["result"], entry["tags"], entry["targets"], entry["limit"]) == (
        "no-changes",
        ["nosuchtag"],
        ["indri"],
        None,
    )
    report = pending_report(repo.context(), layers.select("hosts"))
    assert targets_of(report, "hosts") == {"indri": "never-applied", "sifaka": "never-applied"}
    assert layer_state(report, "hosts") == "never-applied"


def test_one_hosts_run_marks_only_that_host(repo: Repo) -> None:
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"], limit="indri"):
        pass
    assert repo.journal()[-1]["limit"] == "indri"
    report = pending_report(repo.context(), layers.select("hosts"))
    assert targets_of(report, "hosts") == {"indri": "up-to-date", "sifaka": "never-applied"}
    assert layer_state(report, "hosts") == "pending"
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri", "sifaka"]):
        pass
    report = pending_report(repo.context(), layers.select("hosts"))
    assert layer_state(report, "hosts") == "up-to-date"
    repo.change("roles/caddy/tasks/main.yml", "caddy")
    repo.push()
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["sifaka"]):
        pass
    report = pending_report(repo.context(), layers.select("hosts"))
    assert targets_of(report, "hosts") == {"indri": "pending", "sifaka": "up-to-date"}
    (item,) = report["layers"]
    assert {row["target"]: row["commits"] for row in item["targets"]} == {"indri": 1, "sifaka": 0}


def test_argocd_apps_are_targets_of_their_own(repo: Repo) -> None:
    for name in ("grafana", "loki"):
        repo.write(
            f"argocd/apps/{name}.yaml",
            f"kind: Application\nmetadata: {{name: {name}}}\nspec:\n  source: {{path: argocd/apps/{name}}}\n",
        )
    repo.commit("apps")
    repo.push()
    with applying(repo.context(), ARGOCD, task="argocd.sync", targets=["grafana"]):
        pass
    report = pending_report(repo.context(), layers.select("argocd"))
    assert targets_of(report, "argocd") == {"grafana": "up-to-date", "loki": "never-applied"}


def test_an_override_of_uncommitted_files_is_no_baseline(repo: Repo) -> None:
    repo.write("pulumi/__main__.py", "print('edited')\n")
    with applying(repo.context(), TAILNET, task="tailnet.up", targets=["homelab"], allow_dirty=True):
        pass
    report = pending_report(repo.context(), layers.select("tailnet"))
    assert targets_of(report, "tailnet") == {"homelab": "never-applied"}


# ---- the git guard ------------------------------------------------------------------------------------


def test_an_upstream_on_a_local_branch_is_refused(repo: Repo) -> None:
    repo.git("branch", "base")
    repo.git("checkout", "-q", "-b", "work")
    repo.git("branch", "--set-upstream-to=base")
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
        pytest.fail("must not run")
    message = str(info.value.message)
    assert "tracks the local branch base, not origin/main" in message
    assert repo.journal()[-1]["result"] == "refused"


def test_a_pushed_feature_branch_is_refused_unless_configured(repo: Repo) -> None:
    repo.git("checkout", "-q", "-b", "feature-x")
    repo.git("push", "-q", "-u", "origin", "feature-x")
    with pytest.raises(Exit) as info, applying(repo.context(), ARGOCD, task="argocd.sync"):
        pass
    assert "tracks origin/feature-x, not origin/main" in str(info.value.message)
    with applying(repo.context(git={"branch": "feature-x"}), ARGOCD, task="argocd.sync"):
        pass
    assert repo.journal()[-1]["result"] == "succeeded"


def test_paths_outside_the_repo_are_refused_or_overridden_with_the_reason(repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "inventory.yml"
    elsewhere.write_text("all: {}\n", encoding="utf-8")
    sneaky = repo.root / "playbooks" / ".." / ".." / "x.yml"
    paths = {"inventory": elsewhere, "playbook": sneaky, "roles path": repo.root / "roles"}
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision", paths=paths):
        pytest.fail("must not run")
    message = str(info.value.message)
    assert f"inventory {elsewhere}" in message
    assert "x.yml" in message
    assert "roles path" not in message  # inside the repo: fine
    with applying(repo.context(), HOSTS, task="hosts.provision", paths=paths, allow_dirty=True):
        pass
    entry = repo.journal()[-1]
    assert entry["allow_dirty_override"] is True
    assert str(elsewhere) in entry["override_reason"]
    assert entry["paths"]["inventory"] == str(elsewhere)

    # the record's own guard, for paths known only inside the block: refused and journaled as refused
    def guarded() -> None:
        with applying(repo.context(), HOSTS, task="hosts.provision") as record:
            record.guard_paths({"roles path": tmp_path})
            pytest.fail("must not run")

    with pytest.raises(Exit):
        guarded()
    assert repo.journal()[-1]["result"] == "refused"


def test_argocd_never_overrides_a_path_outside(repo: Repo, tmp_path: Path) -> None:
    with (
        pytest.raises(Exit) as info,
        applying(repo.context(), ARGOCD, task="argocd.sync", allow_dirty=True, paths={"manifests": tmp_path}),
    ):
        pass
    assert "--allow-dirty does not apply to argocd" in str(info.value.message)


def test_an_unpushed_override_journals_its_reason(repo: Repo) -> None:
    repo.change("pulumi/__main__.py", "local only")
    with applying(repo.context(), TAILNET, task="tailnet.up", allow_dirty=True):
        pass
    entry = repo.journal()[-1]
    assert entry["allow_dirty_override"] is True
    assert "1 commit ahead of origin/main" in entry["override_reason"]


def test_head_moving_during_an_apply_is_failed_not_succeeded(repo: Repo) -> None:
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
        repo.change("README.md", "a pull landed")
    assert info.value.code == 1
    assert "HEAD moved" in str(info.value.message)
    entry = repo.journal()[-1]
    assert entry["result"] == "failed"
    assert "HEAD moved" in entry["message"]


def test_head_moving_before_a_tool_stops_the_tool(repo: Repo, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    c = repo.context()

    def pulled_mid_run() -> None:
        with applying(c, HOSTS, task="hosts.provision"):
            repo.change("README.md", "a pull landed")
            shell.run(c, f"touch {marker}", hide=True)

    with pytest.raises(Exit) as info:
        pulled_mid_run()
    assert "stopped before running the next tool" in str(info.value.message)
    assert not marker.exists()


# ---- two clones, one lock -------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.gitops.helpers import HOSTS, make_context
    from blumeops_tasks.gitops.session import applying

    root, state, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    try:
        with applying(make_context(root, state), HOSTS, task="hosts.provision"):
            ready.write_text("ready")
            time.sleep(120)
    except BaseException:
        sys.exit(3)
    """
)


def test_two_clones_of_one_repo_cannot_apply_a_layer_at_once(repo: Repo, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    repo.git("clone", "-q", str(repo.remote), str(clone), cwd=tmp_path)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(clone), str(tmp_path / "clone-state"), str(ready)],
        cwd=REPO,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()
        # the other clone has its own state dir, so only the shared lock directory can refuse it
        with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
            pytest.fail("must not overlap the other clone's apply")
        message = str(info.value.message)
        assert "Another hosts apply is running" in message
        assert f"from {clone}" in message
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_the_default_lock_directory_is_outside_every_clone(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    from blumeops_tasks.gitops.session import lock_directory

    c = make_context(repo.root, repo.state, lock_dir=None)
    directory = lock_directory(c, repo.root)
    assert directory.parent == Path.home() / ".local" / "state" / "blumeops" / "locks"
    assert directory.name == repo.git("rev-list", "--max-parents=0", "HEAD").strip()
    with applying(c, HOSTS, task="hosts.provision"):
        assert (directory / "hosts.holder.json").exists()


# ---- the plan digest ------------------------------------------------------------------------------


def plan_with(diff: str) -> LayerPlan:
    return LayerPlan("hosts", (TargetPlan("indri", (Change("update", "caddy.conf", diff=diff),)),), note="took 3s")


def test_the_digest_is_stable_redacted_and_tracks_content(monkeypatch: pytest.MonkeyPatch) -> None:
    first = plan_with("-a\n+b\n")
    assert first.digest() == plan_with("-a\n+b\n").digest()
    assert first.digest().startswith("sha256:")
    assert len(first.digest()) == len("sha256:") + 64
    assert first.digest() != plan_with("-a\n+c\n").digest()
    assert LayerPlan("hosts", first.targets, note="other note").digest() == first.digest()
    monkeypatch.setenv("DB_API_TOKEN", "s3cret-value-123")
    secret = plan_with("+password s3cret-value-123\n")
    masked = plan_with("+password ***\n")
    assert secret.digest() == masked.digest()  # secrets are redacted before hashing
    document = to_json([first])
    assert document["layers"][0]["digest"] == first.digest()
    assert digest_matches(first, short(first))
    assert digest_matches(first, first.digest())
    assert not digest_matches(first, short(first)[:6])  # too short to name a plan
    assert not digest_matches(first, short(plan_with("-a\n+c\n")))


def test_every_preview_prints_its_digest(capsys: pytest.CaptureFixture[str]) -> None:
    from blumeops_tasks import plan as plan_model

    plan = plan_with("-a\n+b\n")
    plan_model.render([plan])
    assert plan.digest() in capsys.readouterr().out


def test_an_apply_bound_to_another_plan_is_refused(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    reviewed = plan_with("-a\n+b\n")
    now = plan_with("-a\n+c\n")

    def bound_apply() -> None:
        with applying(repo.context(), HOSTS, task="hosts.provision", plan=short(reviewed)) as record:
            record.review(now, question="?", action="provision indri", yes=True, unchanged="")
            pytest.fail("must not apply a plan other than the reviewed one")

    with pytest.raises(Exit) as info:
        bound_apply()
    assert info.value.code == 1
    assert "plan changed since it was reviewed" in str(info.value.message)
    assert now.digest() in capsys.readouterr().out  # the new plan is shown before the refusal
    entry = repo.journal()[-1]
    assert (entry["result"], entry["plan_digest"]) == ("refused", now.digest())
    with applying(repo.context(), HOSTS, task="hosts.provision", plan=short(now)) as record:
        assert record.review(now, question="?", action="provision indri", yes=True, unchanged="")
    assert repo.journal()[-1]["result"] == "succeeded"


def test_a_digest_handed_through_the_context_binds_set_plan(repo: Repo) -> None:
    from blumeops_tasks.gitops.session import expect_plan

    c = repo.context()
    expect_plan(c, short(plan_with("-a\n+b\n")))
    with pytest.raises(Exit), applying(c, ARGOCD, task="argocd.sync") as record:
        record.set_plan(plan_with("-x\n+y\n"))
    assert repo.journal()[-1]["result"] == "refused"


def test_git_state_is_a_preflight_row(repo: Repo) -> None:
    from blumeops_tasks import preflight as runner
    from blumeops_tasks.gitops.session import git_check

    (clean,) = runner.run_checks([git_check(repo.context(), HOSTS)], 30)
    assert (clean.layer, clean.name, clean.status) == ("hosts", "git state", "ok")
    repo.change("roles/caddy/tasks/main.yml", "unpushed")
    repo.write("roles/caddy/tasks/main.yml", "- dirty\n")
    (dirty,) = runner.run_checks([git_check(repo.context(), HOSTS)], 30)
    assert dirty.status == "fail"
    assert "roles/caddy/tasks/main.yml" in dirty.detail
    assert "1 commit ahead of origin/main" in dirty.detail
    (overridden,) = runner.run_checks([git_check(repo.context(), HOSTS, allow_dirty=True)], 30)
    assert overridden.status == "warn"
    (argocd,) = runner.run_checks([git_check(repo.context(), ARGOCD, allow_dirty=True)], 30)
    assert argocd.status == "fail"  # never overridable, but its own files are clean: the unpushed commit counts


def test_a_roles_path_from_the_environment_outside_the_repo_is_refused(repo: Repo, tmp_path: Path) -> None:
    from blumeops_tasks.gitops.git_state import env_paths

    outside_roles = tmp_path / "roles-elsewhere"
    outside_roles.mkdir()
    environ = {"ANSIBLE_ROLES_PATH": f"{repo.root / 'roles'}:{outside_roles}"}
    paths = env_paths("ANSIBLE_ROLES_PATH", environ)
    assert list(paths.values()) == [str(repo.root / "roles"), str(outside_roles)]
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision", paths=paths):
        pytest.fail("must not run")
    assert f"ANSIBLE_ROLES_PATH[1] {outside_roles} outside the repository" in str(info.value.message)


def test_an_unusable_lock_directory_refuses_in_one_sentence(repo: Repo, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(Exit) as info, applying(repo.context(lock_dir=str(blocker)), HOSTS, task="hosts.provision"):
        pytest.fail("must not run")
    assert "Cannot take the hosts apply lock" in str(info.value.message)
    assert repo.journal()[-1]["result"] == "refused"
