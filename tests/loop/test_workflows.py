"""The shipped review workflows: they run `inv check` and `inv review`, and the Forgejo one's comment
step really creates, then updates, one comment (run with bash, curl and jq against a local stand-in
for the Forgejo API on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from blumeops_tasks.loop.review import MARKER
from tests.conftest import REPO, require_tool

WORKFLOWS = REPO / "docs" / "workflows"


def steps(name: str) -> list[dict[str, Any]]:
    document = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    (job,) = document["jobs"].values()
    return list(job["steps"])


@pytest.mark.parametrize("name", ["forgejo-review.yml", "github-review.yml"])
def test_workflow_runs_check_and_posts_review(name: str) -> None:
    document = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert "pull_request" in document[True]  # YAML 1.1 reads the `on:` key as True
    runs = [str(step.get("run", "")) for step in steps(name)]
    assert any(run.strip() == "inv check" for run in runs)
    review = next(step for step in steps(name) if "inv review" in str(step.get("run", "")))
    assert review.get("if") == "always()"  # a failing check still gets its comment
    assert '--since="origin/$BASE_REF"' in review["run"]
    checkout = next(step for step in steps(name) if str(step.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    (job,) = document["jobs"].values()
    assert Path(job["env"]["REVIEW_FILE"]).is_absolute()  # never inside the checkout


class FakeForgejo(BaseHTTPRequestHandler):
    comments: list[dict[str, Any]]
    calls: list[tuple[str, str]]

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path))
        assert self.headers["Authorization"] == "token t0ken"
        self._reply(200, self.comments)

    def do_POST(self) -> None:
        self.calls.append(("POST", self.path))
        comment = {"id": len(self.comments) + 1, "body": self._body()["body"]}
        self.comments.append(comment)
        self._reply(201, comment)

    def do_PATCH(self) -> None:
        self.calls.append(("PATCH", self.path))
        wanted = int(self.path.rsplit("/", 1)[1])
        comment = next(c for c in self.comments if c["id"] == wanted)
        comment["body"] = self._body()["body"]
        self._reply(200, comment)

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def forgejo() -> Iterator[tuple[str, type[FakeForgejo]]]:
    handler = type("Handler", (FakeForgejo,), {"comments": [{"id": 1, "body": "LGTM"}], "calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/repos/erich/blumeops", handler
    finally:
        server.shutdown()
        server.server_close()


def test_forgejo_comment_step_creates_then_updates_one_comment(
    forgejo: tuple[str, type[FakeForgejo]], tmp_path: Path
) -> None:
    for tool in ("bash", "curl", "jq"):
        require_tool(tool)
    api, handler = forgejo
    post = next(step for step in steps("forgejo-review.yml") if "comments" in str(step.get("run", "")))
    review_file = tmp_path / "review.md"
    env = {"PATH": "/usr/bin:/bin", "TOKEN": "t0ken", "API": api, "PR": "7", "REVIEW_FILE": str(review_file)}

    def post_review(text: str) -> None:
        review_file.write_text(text, encoding="utf-8")
        done = subprocess.run(
            ["bash", "-c", post["run"]], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    post_review(f'{MARKER}\n## blumeops review\nfirst push with `code` and "quotes"\n')
    post_review(f"{MARKER}\n## blumeops review\nsecond push\n")
    assert [method for method, _path in handler.calls] == ["GET", "POST", "GET", "PATCH"]
    assert handler.calls[1][1] == "/api/v1/repos/erich/blumeops/issues/7/comments"
    assert handler.calls[3][1] == "/api/v1/repos/erich/blumeops/issues/comments/2"
    assert [c["body"] for c in handler.comments] == ["LGTM", f"{MARKER}\n## blumeops review\nsecond push\n"]


@pytest.mark.parametrize("name", ["forgejo-review.yml", "github-review.yml"])
def test_review_step_writes_the_comment_and_its_exit_code(name: str, tmp_path: Path, isolated_env: Path) -> None:
    """The workflow's `inv review` step, run by bash in a pull-request checkout (a feature branch of a
    real repo with a bare remote), with `inv` being this tree's invoke."""
    import os
    import sys

    from tests.conftest import clean_environ
    from tests.gitops.helpers import GIT_IDENTITY, Repo

    require_tool("git")
    repo = Repo(tmp_path / "pr")
    # the checkout's own tasks.py: the composition root an adopting repo commits
    repo.write("tasks.py", (REPO / "tasks.py").read_text(encoding="utf-8"))
    repo.commit("tasks.py")
    repo.push()
    repo.git("checkout", "-q", "-b", "feature")
    repo.change("roles/caddy/tasks/main.yml", "caddy: tls")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "inv").write_text(f'#!/bin/sh\nexec {sys.executable} -m invoke "$@"\n', encoding="utf-8")
    (bindir / "inv").chmod(0o755)
    outputs, review_file = tmp_path / "github_output", tmp_path / "review.md"
    env = clean_environ(
        isolated_env,
        {
            **GIT_IDENTITY,
            "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
            "INVOKE_BLUMEOPS_STATE_DIR": str(tmp_path / "state"),
            "BASE_REF": "main",
            "GITHUB_OUTPUT": str(outputs),
            "REVIEW_FILE": str(review_file),
        },
    )
    step = next(s for s in steps(name) if "inv review" in str(s.get("run", "")))
    done = subprocess.run(
        ["bash", "-c", step["run"]], cwd=repo.root, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr  # the step records the code; the last step fails the job
    assert outputs.read_text(encoding="utf-8").strip() == "exit_code=1"  # the toy repo fails some checks
    comment = review_file.read_text(encoding="utf-8")
    assert comment.startswith(MARKER)
    assert "compared with `origin/main`" in comment
    assert "inv hosts.provision --host=indri --tags caddy" in comment
    assert "to no layer" not in comment  # nothing untracked: the comment file lives outside the checkout
