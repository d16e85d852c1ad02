"""`applying`: guard, lock and journal around one apply, against real git repositories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from invoke.exceptions import Exit, UnexpectedExit

from blumeops_tasks.console import Declined
from blumeops_tasks.gitops.lock import clear_stale
from blumeops_tasks.gitops.session import applying
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan
from tests.conftest import REPO
from tests.gitops.helpers import ARGOCD, HOSTS, TAILNET, Repo, git_env

# ---- git-state guard --------------------------------------------------------------------------


def test_clean_pushed_repo_applies_and_journals_success(repo: Repo) -> None:
    plan = LayerPlan(
        "hosts",
        (TargetPlan("indri", (Change("update", "caddy.conf"), Change("run", "restart caddy"))),),
    )
    with applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]) as record:
        record.set_plan(plan)
    (entry,) = repo.journal()
    assert entry["result"] == "succeeded"
    assert entry["exit_code"] == 0
    assert entry["layer"] == "hosts"
    assert entry["task"] == "hosts.provision"
    assert entry["targets"] == ["indri"]
    assert entry["commit"] == repo.head()
    assert len(entry["commit"]) == 40
    assert entry["dirty"] is False
    assert entry["allow_dirty_override"] is False
    assert entry["plan_counts"] == {"create": 0, "update": 1, "delete": 0, "replace": 0, "run": 1}
    assert entry["time"].endswith("Z")
    assert entry["user"]
    assert entry["machine"]
    assert isinstance(entry["duration_s"], float)


def test_dirty_layer_file_is_refused_naming_the_file_and_the_fix(repo: Repo) -> None:
    repo.write("roles/caddy/tasks/main.yml", "- changed\n")
    repo.write("roles/caddy/templates/new.j2", "untracked\n")
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
        pytest.fail("the body must not run")
    message = str(info.value.message)
    assert info.value.code == 1
    assert "Refusing to apply hosts" in message
    assert "roles/caddy/tasks/main.yml" in message
    assert "roles/caddy/templates/new.j2" in message
    assert "--allow-dirty" in message
    assert "commit and push" in message
    (entry,) = repo.journal()
    assert entry["result"] == "refused"
    assert entry["dirty"] is True


def test_staged_deleted_and_renamed_layer_files_count_as_dirty(repo: Repo) -> None:
    repo.git("mv", "inventory/host_vars/indri.yml", "inventory/host_vars/indri2.yml")
    (repo.root / "ansible.cfg").unlink()
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    message = str(info.value.message)
    assert "inventory/host_vars/indri2.yml" in message
    assert "ansible.cfg" in message


def test_dirty_files_elsewhere_only_do_not_block(repo: Repo) -> None:
    repo.write("README.md", "# edited\n")
    repo.write("argocd/apps/grafana/deployment.yaml", "kind: Changed\n")
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    (entry,) = repo.journal()
    assert entry["result"] == "succeeded"
    assert entry["dirty"] is False


def test_more_dirty_files_than_shown_are_counted(repo: Repo) -> None:
    for n in range(5):
        repo.write(f"pulumi/extra{n}.py", "x = 1\n")
    with pytest.raises(Exit) as info, applying(repo.context(), TAILNET, task="tailnet.up"):
        pass
    assert "(+2 more)" in str(info.value.message)


def test_allow_dirty_overrides_for_hosts_and_is_journaled(repo: Repo) -> None:
    repo.write("roles/caddy/tasks/main.yml", "- changed\n")
    with applying(repo.context(), HOSTS, task="hosts.provision", allow_dirty=True):
        pass
    (entry,) = repo.journal()
    assert entry["result"] == "succeeded"
    assert entry["dirty"] is True
    assert entry["allow_dirty_override"] is True
    assert entry["dirty_files"] == ["roles/caddy/tasks/main.yml"]


def test_allow_dirty_on_clean_tree_is_not_an_override(repo: Repo) -> None:
    with applying(repo.context(), TAILNET, task="tailnet.up", allow_dirty=True):
        pass
    (entry,) = repo.journal()
    assert entry["allow_dirty_override"] is False


def test_argocd_refuses_dirty_even_with_allow_dirty(repo: Repo) -> None:
    repo.write("argocd/apps/grafana/deployment.yaml", "kind: Changed\n")
    with (
        pytest.raises(Exit) as info,
        applying(repo.context(), ARGOCD, task="argocd.sync", allow_dirty=True),
    ):
        pytest.fail("the body must not run")
    message = str(info.value.message)
    assert "argocd/apps/grafana/deployment.yaml" in message
    assert "ArgoCD deploys only pushed commits" in message
    assert "--allow-dirty does not apply to argocd" in message
    assert repo.journal()[-1]["result"] == "refused"


def test_ahead_of_upstream_is_refused_with_push_fix(repo: Repo) -> None:
    repo.change("README.md", "local only")
    with pytest.raises(Exit) as info, applying(repo.context(), ARGOCD, task="argocd.sync"):
        pass
    message = str(info.value.message)
    assert "1 commit ahead of origin/main" in message
    assert "git push" in message


def test_ahead_of_upstream_with_allow_dirty_for_tailnet_applies(repo: Repo) -> None:
    repo.change("pulumi/__main__.py", "local only")
    with applying(repo.context(), TAILNET, task="tailnet.up", allow_dirty=True):
        pass
    (entry,) = repo.journal()
    assert entry["allow_dirty_override"] is True
    assert entry["dirty"] is False  # no uncommitted files; the override covered the unpushed commit


def test_no_upstream_is_refused(repo_no_upstream: Repo) -> None:
    with pytest.raises(Exit) as info, applying(repo_no_upstream.context(), HOSTS, task="hosts.provision"):
        pass
    message = str(info.value.message)
    assert "branch main has no upstream" in message
    assert "git push -u origin main" in message


def test_behind_upstream_is_refused_with_pull_fix(repo: Repo, tmp_path: Path) -> None:
    other = tmp_path / "other"
    repo.git("clone", "-q", str(repo.remote), str(other), cwd=tmp_path)
    (other / "README.md").write_text("other\n", encoding="utf-8")
    subprocess.run(["git", "commit", "-qam", "other"], cwd=other, check=True, env=git_env())
    subprocess.run(["git", "push", "-q"], cwd=other, check=True, env=git_env())
    repo.git("fetch", "-q")
    with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    assert "behind origin/main" in str(info.value.message)
    assert "git pull --ff-only" in str(info.value.message)


def test_not_a_git_repo_is_one_sentence(tmp_path: Path) -> None:
    from tests.gitops.helpers import make_context

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(Exit) as info, applying(make_context(plain, tmp_path / "s"), HOSTS, task="x"):
        pass
    assert "Cannot read the git state" in str(info.value.message)


# ---- results ----------------------------------------------------------------------------------


def test_failed_exit_is_journaled_with_code(repo: Repo) -> None:
    with pytest.raises(Exit), applying(repo.context(), HOSTS, task="hosts.provision", targets=["indri"]):
        raise Exit("ansible-playbook failed", code=4)
    (entry,) = repo.journal()
    assert entry["result"] == "failed"
    assert entry["exit_code"] == 4
    assert entry["message"] == "ansible-playbook failed"


def test_tool_unexpected_exit_is_failed_with_tool_code(repo: Repo) -> None:
    ctx = repo.context()
    with pytest.raises(UnexpectedExit), applying(ctx, HOSTS, task="hosts.provision"):
        ctx.run("sh -c 'exit 3'", hide=True, in_stream=False)
    (entry,) = repo.journal()
    assert entry["result"] == "failed"
    assert entry["exit_code"] == 3


def test_unexpected_exception_is_failed(repo: Repo) -> None:
    with pytest.raises(RuntimeError), applying(repo.context(), HOSTS, task="hosts.provision"):
        raise RuntimeError("boom")
    (entry,) = repo.journal()
    assert (entry["result"], entry["exit_code"], entry["message"]) == ("failed", 1, "RuntimeError: boom")


def test_declined_is_journaled_as_declined(repo: Repo) -> None:
    with pytest.raises(Declined), applying(repo.context(), HOSTS, task="hosts.provision"):
        raise Declined("Nothing changed: provision indri was not confirmed.", code=1)
    (entry,) = repo.journal()
    assert entry["result"] == "declined"


def test_no_changes_mark(repo: Repo) -> None:
    with applying(repo.context(), HOSTS, task="hosts.provision") as record:
        record.set_plan(LayerPlan("hosts", (TargetPlan("indri"),)))
        record.mark("no-changes")
    (entry,) = repo.journal()
    assert entry["result"] == "no-changes"
    assert entry["plan_counts"] == {"create": 0, "update": 0, "delete": 0, "replace": 0, "run": 0}


def test_unknown_mark_is_rejected(repo: Repo) -> None:
    with (
        applying(repo.context(), HOSTS, task="hosts.provision") as record,
        pytest.raises(ValueError, match="unknown mark"),
    ):
        record.mark("partly")


def test_keyboard_interrupt_in_process_is_journaled_and_reraised(repo: Repo) -> None:
    with pytest.raises(KeyboardInterrupt), applying(repo.context(), HOSTS, task="hosts.provision"):
        raise KeyboardInterrupt
    (entry,) = repo.journal()
    assert (entry["result"], entry["exit_code"]) == ("interrupted", 130)
    assert not (repo.locks / "hosts.holder.json").exists()


def test_planted_secret_never_reaches_the_journal(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tskey-planted-0123456789abcdef"
    monkeypatch.setenv("TAILSCALE_API_KEY", secret)

    def leaky_apply() -> None:
        with applying(repo.context(), TAILNET, task="tailnet.up", targets=[f"key={secret}"]) as record:
            record.note(f"used {secret}")
            raise Exit(f"pulumi said {secret}", code=1)

    with pytest.raises(Exit):
        leaky_apply()
    with pytest.raises(RuntimeError), applying(repo.context(), TAILNET, task="tailnet.up"):
        raise RuntimeError(f"leak {secret}")
    text = repo.journal_text()
    assert secret not in text
    assert "tskey-planted" not in text
    assert text.count("***") >= 3


# ---- lock across real processes -----------------------------------------------------------------

HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.gitops.helpers import HOSTS, make_context
    from blumeops_tasks.gitops.session import applying

    from invoke.exceptions import Exit

    root, state, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    try:
        with applying(make_context(root, state), HOSTS, task="hosts.provision", targets=["indri"]):
            ready.write_text("ready")
            time.sleep(120)
    except Exit as stop:  # what invoke's program does with an Exit
        print(stop.message, file=sys.stderr)
        sys.exit(stop.code)
    """
)


def _start_holder(repo: Repo, tmp_path: Path) -> subprocess.Popen[str]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(repo.root), str(repo.state), str(ready)],
        cwd=REPO,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(600):  # wait for readiness, not for a duration
        if ready.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert ready.exists(), f"holder did not start: {proc.communicate()}"
    return proc


def test_second_concurrent_apply_is_refused_naming_the_holder(repo: Repo, tmp_path: Path) -> None:
    proc = _start_holder(repo, tmp_path)
    try:
        with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
            pytest.fail("the second apply must not run")
        message = str(info.value.message)
        assert "Another hosts apply is running" in message
        assert f"pid {proc.pid}" in message
        assert "running hosts.provision" in message
        assert "@" in message
        assert " since 20" in message
        # another layer is not blocked
        with applying(repo.context(), TAILNET, task="tailnet.up"):
            pass
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    results = [(e["layer"], e["result"]) for e in repo.journal()]
    assert ("hosts", "refused") in results
    assert ("tailnet", "succeeded") in results
    assert ("hosts", "interrupted") in results  # the holder, stopped by a real SIGINT
    # the lock is free again
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        pass


def test_sigint_to_a_running_apply_is_journaled_as_interrupted(repo: Repo, tmp_path: Path) -> None:
    proc = _start_holder(repo, tmp_path)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted by SIGINT" in err
    assert "Traceback" not in err
    (entry,) = repo.journal()
    assert (entry["result"], entry["exit_code"], entry["targets"]) == ("interrupted", 130, ["indri"])
    assert not (repo.locks / "hosts.holder.json").exists()


TOOL_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from invoke.exceptions import Exit
    from tests.gitops.helpers import TAILNET, make_context
    from blumeops_tasks.gitops.session import applying

    root, state, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    c = make_context(root, state)
    with applying(c, TAILNET, task="tailnet.up", targets=["homelab"]) as record:
        record.note("applying 2 update")
        ready.write_text("ready")
        result = c.run("sleep 60", warn=True, hide=True, in_stream=False)
        if result.exited:
            raise Exit("pulumi up failed", code=result.exited)
    """
)


def test_ctrl_c_while_the_tool_runs_is_interrupted_not_failed(repo: Repo, tmp_path: Path) -> None:
    # invoke swallows the KeyboardInterrupt, forwards it, and returns the tool's failed result;
    # the terminal's Ctrl-C reaches the whole process group, as killpg does here.
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", TOOL_SCRIPT, str(repo.root), str(repo.state), str(ready)],
        cwd=REPO,
        env=git_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for _ in range(600):
        if ready.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()
    time.sleep(0.2)  # let `sleep` start: not a timing assertion, only a head start for the signal
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    (entry,) = repo.journal()
    assert entry["result"] == "interrupted"
    assert entry["message"].startswith("applying 2 update; interrupted by SIGINT (Ctrl-C)")
    assert entry["exit_code"] != 0


def test_stale_lock_of_a_killed_apply_is_reported_not_broken(repo: Repo, tmp_path: Path) -> None:
    proc = _start_holder(repo, tmp_path)
    proc.kill()  # SIGKILL: no cleanup, the holder file stays
    proc.communicate(timeout=60)
    holder_file = repo.locks / "hosts.holder.json"
    assert holder_file.exists()
    for _attempt in range(2):  # refused every time: never broken silently
        with pytest.raises(Exit) as info, applying(repo.context(), HOSTS, task="hosts.provision"):
            pytest.fail("must not run over a stale lock")
        message = str(info.value.message)
        assert "Stale hosts apply lock" in message
        assert f"pid {proc.pid}" in message
        assert "no longer running" in message
        assert "inv unlock --layer=hosts" in message
        assert str(holder_file) in message
        assert holder_file.exists()
    status, holder = clear_stale(repo.locks, "hosts")
    assert status == "cleared"
    assert holder is not None
    assert holder.pid == proc.pid
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        pass
    assert repo.journal()[-1]["result"] == "succeeded"


def test_clear_stale_refuses_while_a_live_apply_holds_it(repo: Repo, tmp_path: Path) -> None:
    proc = _start_holder(repo, tmp_path)
    try:
        status, holder = clear_stale(repo.locks, "hosts")
        assert status == "busy"
        assert holder is not None
        assert holder.pid == proc.pid
        assert (repo.locks / "hosts.holder.json").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert clear_stale(repo.locks, "hosts") == ("free", None)


def test_stale_messages_name_why_and_the_clearing_command(tmp_path: Path) -> None:
    from blumeops_tasks.gitops.lock import Holder, stale_message

    path = tmp_path / "hosts.holder.json"
    dead = Holder("erich", "indri", 999999, "T", "hosts.provision", "hosts")
    assert stale_message("hosts", dead, "indri", path) == (
        "Stale hosts apply lock left by erich@indri pid 999999 since T running hosts.provision: "
        "its process 999999 on indri is no longer running; check what that apply left half-done, "
        f"then clear it with `inv unlock --layer=hosts` (or `rm {path}`) and re-run."
    )
    reused = Holder("erich", "indri", os.getpid(), "T", "hosts.provision", "hosts")
    assert "is now some other process" in stale_message("hosts", reused, "indri", path)
    assert "taken on indri, not this machine" in stale_message("hosts", dead, "sifaka", path)


def test_holder_file_is_removed_after_each_apply(repo: Repo) -> None:
    with applying(repo.context(), HOSTS, task="hosts.provision"):
        assert (repo.locks / "hosts.holder.json").exists()
        assert os.getpid() == int(__import__("json").loads((repo.locks / "hosts.holder.json").read_text())["pid"])
    assert not (repo.locks / "hosts.holder.json").exists()
