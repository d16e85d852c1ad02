"""An apply's lifecycle through a real `inv`: its tool in its own process group, stopped as a whole
by SIGINT/SIGTERM/SIGHUP (exit 130/143/129, journaled interrupted); a SIGKILLed apply leaves its
started line, and `inv unlock` refuses while its orphaned tool still runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from blumeops_tasks.gitops.lock import group_alive, read_holder
from tests.conftest import REPO, clean_environ
from tests.gitops.helpers import GIT_IDENTITY, Repo

TASKS = textwrap.dedent(
    """
    import json, os
    from pathlib import Path
    from invoke import Collection
    from invoke.exceptions import Exit
    from blumeops_tasks import shell
    from blumeops_tasks.config import compose_defaults
    from blumeops_tasks.gitops.session import applying
    from blumeops_tasks.tasking import task
    from tests.gitops.helpers import HOSTS, LAYER_PATHS

    @task(help={"cmd": "the tool", "tags": "tags"})
    def apply(c, cmd="", tags=None):
        with applying(c, HOSTS, task="hosts.provision", targets=["indri"], tags=tags) as record:
            record.note("applying")
            result = shell.run(c, cmd, warn=True, hide=True)
            if result.exited:
                raise Exit(f"the tool exited {result.exited}", code=99)  # as ansible-playbook does

    settings = json.loads(os.environ["TEST_BLUMEOPS"])
    from blumeops_tasks.gitops.tasks import history, pending, unlock

    ns = Collection(apply, history, pending, unlock)
    config = compose_defaults(LAYER_PATHS, Path(settings["root"]))
    config["blumeops"].update(settings)
    ns.configure(config)
    """
)

# The tool: a shell with a grandchild, both in the tool's process group; it says when it runs.
TOOL = "sleep 300 & echo $! > {dir}/child.pid; echo $$ > {dir}/tool.pid; wait"


class Project:
    def __init__(self, repo: Repo, tmp: Path, home: Path) -> None:
        self.repo = repo
        self.dir = tmp / "project"
        self.dir.mkdir()
        (self.dir / "tasks.py").write_text(TASKS, encoding="utf-8")
        self.pids = tmp / "pids"
        self.pids.mkdir()
        settings = {
            "root": str(repo.root),
            "state_dir": str(repo.state),
            "journal": "journal.jsonl",
            "lock_dir": str(repo.state.parent / "locks"),
            "stop_grace": 1.0,
        }
        self.env = clean_environ(home, {"TEST_BLUMEOPS": json.dumps(settings), "PYTHONPATH": str(REPO), **GIT_IDENTITY})

    def start(self, *args: str, tool: str = TOOL) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "invoke",
                "-r",
                str(self.dir),
                "apply",
                f"--cmd={tool.format(dir=self.pids)}",
                *args,
            ],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(self.dir), *args],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def wait_for_tool(self, proc: subprocess.Popen[str]) -> tuple[int, int]:
        """(the tool's pid = its process group, its grandchild's pid) once both run and the holder names the group."""
        holder_file = self.repo.locks / "hosts.holder.json"
        for _ in range(600):
            if proc.poll() is not None:
                break
            holder = read_holder(holder_file)
            if (self.pids / "child.pid").exists() and holder is not None and holder.groups:
                text = (self.pids / "tool.pid").read_text().strip()
                if text:
                    return int(text), int((self.pids / "child.pid").read_text().strip())
            time.sleep(0.05)
        pytest.fail(f"the tool did not start: {proc.communicate(timeout=30)}")


def gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def project(repo: Repo, tmp_path: Path, isolated_env: Path) -> Project:
    return Project(repo, tmp_path, isolated_env)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_the_tool_group_and_is_journaled(project: Project, signum: int, code: int) -> None:
    proc = project.start()
    tool, grandchild = project.wait_for_tool(proc)
    assert os.getpgid(tool) == tool != os.getpgid(proc.pid)  # the tool leads its own group
    os.kill(proc.pid, signum)  # to `inv` only: the tool is not in its process group
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert gone(tool)
    assert gone(grandchild), "the whole process group stops, not only its leader"
    lines = project.repo.journal_lines()
    assert [line["result"] for line in lines] == ["started", "interrupted"]
    assert lines[1]["exit_code"] == code
    assert lines[0]["apply_id"] == lines[1]["apply_id"]
    assert not (project.repo.locks / "hosts.holder.json").exists()


def test_a_tool_that_ignores_the_signal_is_killed_after_the_grace(project: Project) -> None:
    proc = project.start(tool="trap '' INT TERM HUP; " + TOOL)  # ignored signals are inherited by the child
    tool, grandchild = project.wait_for_tool(proc)
    os.kill(proc.pid, signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert gone(tool)
    assert gone(grandchild)
    assert project.repo.journal()[-1]["result"] == "interrupted"


def test_a_killed_apply_leaves_its_started_line_and_unlock_waits_for_its_tool(project: Project) -> None:
    proc = project.start()
    tool, grandchild = project.wait_for_tool(proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    try:
        assert group_alive(tool)  # the orphaned tool still runs
        (entry,) = project.repo.journal()
        assert (entry["result"], entry["targets"]) == ("started", ["indri"])
        history = project.run("history", "--json")
        assert history.returncode == 0, history.stderr
        assert json.loads(history.stdout)["entries"][0]["result"] == "started"
        shown = project.run("history")
        assert "no end line" in shown.stdout

        unlock = project.run("unlock", "--layer=hosts")
        assert unlock.returncode == 1
        assert f"process group {tool} still run" in unlock.stderr
        assert f"kill -TERM -{tool}" in unlock.stderr
        assert (project.repo.locks / "hosts.holder.json").exists()
        again = project.start()
        _out, err = again.communicate(timeout=60)
        assert again.returncode == 1
        assert f"process group {tool} still run" in err
        assert not (project.pids / "second").exists()
    finally:
        os.killpg(tool, signal.SIGKILL)  # the group this test started
    assert gone(tool)
    assert gone(grandchild)
    unlock = project.run("unlock", "--layer=hosts")
    assert unlock.returncode == 0, unlock.stderr
    assert "Cleared the stale hosts apply lock" in unlock.stdout


def test_an_apply_that_cannot_journal_refuses_before_acting(project: Project) -> None:
    project.repo.state.mkdir(parents=True)
    (project.repo.state / "journal.jsonl").symlink_to("/dev/full")  # every write: ENOSPC, a full disk
    proc = project.start()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Cannot write the apply journal" in err
    assert "nothing was applied" in err
    assert "Traceback" not in err
    assert not (project.pids / "tool.pid").exists(), "the tool never started"
    assert not (project.repo.locks / "hosts.holder.json").exists()


def test_history_shows_what_narrowed_a_run(project: Project) -> None:
    proc = project.start("--tags=caddy,nosuchtag", tool="true")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    shown = project.run("history")
    assert shown.returncode == 0, shown.stderr
    assert "indri (tags caddy,nosuchtag)" in shown.stdout
    pending = project.run("pending", "--layer=hosts", "--json")
    assert pending.returncode == 2  # a tagged run brings nothing fully in line
    assert {t["target"]: t["state"] for t in json.loads(pending.stdout)["layers"][0]["targets"]} == {
        "indri": "never-applied",
        "sifaka": "never-applied",
    }


def test_tools_started_from_several_threads_are_all_named_in_the_holder_file(tmp_path: Path) -> None:
    """A provision's preflight starts tools while its preview runs: every group lands in the holder file."""
    from concurrent.futures import ThreadPoolExecutor

    from blumeops_tasks.gitops.lock import ApplyLock, Holder

    sleepers = [subprocess.Popen(["sleep", "30"], start_new_session=True) for _ in range(8)]
    lock = ApplyLock(tmp_path / "locks", "hosts")
    lock.acquire(Holder("op", "box", os.getpid(), "now", "hosts.provision", "hosts", pgid=os.getpgid(0)))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda p: lock.add_group(p.pid), sleepers))
        holder = read_holder(lock.holder_file)
        assert holder is not None
        assert sorted(holder.groups) == sorted(p.pid for p in sleepers)
    finally:
        lock.release()
        for process in sleepers:
            process.kill()
            process.wait()
