"""`inv review`: the Markdown comment against golden files, and the real task end to end.

The goldens (tests/loop/golden/*.md) are rendered from a real git repository built in a temp dir
(tests/gitops/helpers.py's Repo, with a bare remote) and layers whose checks and plans are fixed
here, so only our rendering decides the text. Commit SHAs are replaced by <head>/<base>.

Regenerate them after an intended change of the format, then read the diff before committing:

    BLUMEOPS_REGEN_GOLDEN=1 PYTHONPATH=$PWD CI=true python3 -m pytest tests/loop/test_review.py -q
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from invoke.context import Context

from blumeops_tasks.layer import Layer
from blumeops_tasks.loop import review
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan
from blumeops_tasks.preflight import CheckSpec, Outcome, failed, ok, skipped, warn
from tests.conftest import REPO, clean_environ, run_inv
from tests.gitops.helpers import LAYER_PATHS, Repo

GOLDEN = Path(__file__).with_name("golden")
# Read at import: the autouse isolated_env fixture hides BLUMEOPS_* variables from the tests themselves.
REGENERATE = bool(os.environ.get("BLUMEOPS_REGEN_GOLDEN"))
DIGEST = "sha256:" + "0123456789abcdef" * 4


class DigestedPlan(LayerPlan):
    """A plan with a fixed digest, so the golden does not depend on the digest's algorithm."""

    def digest(self) -> str:
        return DIGEST


def fake_layer(
    name: str,
    apply_task: str,
    checks: Sequence[tuple[str, Outcome]] = (),
    plan: LayerPlan | None = None,
    preflight: Outcome | None = None,
) -> Layer:
    from invoke.collection import Collection

    def preflight_checks(_c: object) -> list[CheckSpec]:
        return [CheckSpec(name, "credentials", lambda: preflight)] if preflight else []

    return Layer(
        name=name,
        help=name,
        collection=Collection(name),
        path_settings=tuple(LAYER_PATHS[name]),
        offline_checks=lambda _c: [CheckSpec(name, check, lambda o=o: o) for check, o in checks],
        preflight_checks=preflight_checks,
        plan=lambda _c: plan if plan is not None else LayerPlan(name),
        apply_task=apply_task,
    )


HOSTS_PLAN = DigestedPlan(
    "hosts",
    (
        TargetPlan(
            "indri",
            (
                Change("update", "caddy: template /etc/caddy/Caddyfile", "--- before\n+++ after\n-:80\n+:443\n"),
                Change("run", "caddy: reload caddy", detail="handler"),
            ),
        ),
        TargetPlan("sifaka"),
    ),
)


def layers_failing() -> list[Layer]:
    return [
        fake_layer(
            "tailnet",
            "tailnet.up",
            [("policy syntax", ok("parses"))],
            preflight=failed("TAILSCALE_API_KEY is not set", "fill .env"),
        ),
        fake_layer(
            "hosts",
            "hosts.provision",
            [
                ("syntax site.yml", failed("playbooks/site.yml: a | in the wrong place", "fix line 3")),
                ("argument specs", warn("role ntp has no meta/argument_specs.yml", "add one")),
                ("templates", skipped("set at run time")),
            ],
            plan=HOSTS_PLAN,
        ),
        fake_layer(
            "argocd", "argocd.sync", [("app caddy", ok("fine"))], plan=LayerPlan("argocd", error="no kubeconfig")
        ),
    ]


def ctx(repo: Repo) -> Context:
    return repo.context(check_timeout=30.0, preflight_timeout=10.0)


def normalised(text: str, repo: Repo, base: str) -> str:
    for sha, name in ((repo.head(), "<head>"), (base, "<base>")):
        text = text.replace(sha, name).replace(sha[:12], name)
    return text


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden {path}; regenerate (see this file's docstring)"
    assert text == path.read_text(encoding="utf-8")


def test_golden_failing_checks_targets_and_plans(repo: Repo) -> None:
    base = repo.head()
    repo.change("roles/caddy/tasks/main.yml", "caddy: tls")
    repo.change("README.md", "docs")
    repo.push()
    document = review.collect(ctx(repo), since="origin/main~2", live=False, offline=False, selected=layers_failing())
    assert document["exit_code"] == 1
    plans = {entry["layer"]: entry for entry in document["plans"]}
    assert plans["tailnet"]["ran"] is False  # its preflight failed: no live preview
    assert plans["hosts"]["plan"]["digest"] == DIGEST
    check_golden("failing.md", normalised(review.markdown(document), repo, base))


def test_golden_clean_offline(repo: Repo) -> None:
    base = repo.head()
    repo.change("README.md", "docs only")
    layers = [fake_layer("hosts", "hosts.provision", [("syntax", ok("fine"))], plan=HOSTS_PLAN)]
    document = review.collect(ctx(repo), since=base, live=False, offline=True, selected=layers)
    assert document["exit_code"] == 0
    check_golden("clean.md", normalised(review.markdown(document), repo, base))


def test_live_runs_previews_despite_a_failing_preflight(repo: Repo) -> None:
    base = repo.head()
    layers = [fake_layer("hosts", "hosts.provision", plan=HOSTS_PLAN, preflight=failed("no ssh key"))]
    auto = review.collect(ctx(repo), since=base, live=False, offline=False, selected=layers)
    assert auto["plans"][0]["reason"] == "preflight credentials: no ssh key"
    forced = review.collect(ctx(repo), since=base, live=True, offline=False, selected=layers)
    assert forced["plans"][0]["ran"] is True
    assert forced["plans"][0]["plan"]["counts"]["update"] == 1


def test_since_is_the_merge_base(repo: Repo) -> None:
    """Commits on the target branch after the branch point are not the pull request's changes."""
    base = repo.head()
    repo.git("checkout", "-q", "-b", "feature")
    repo.change("roles/caddy/tasks/main.yml", "feature: caddy")
    repo.git("checkout", "-q", "main")
    repo.change("pulumi/__main__.py", "main moved on")
    repo.git("checkout", "-q", "feature")
    document = review.collect(ctx(repo), since="main", live=False, offline=True, selected=layers_failing())
    assert document["base"] == base
    assert [f["path"] for f in document["affected"]["files"]] == ["roles/caddy/tasks/main.yml"]


def test_markdown_survives_backticks_and_pipes() -> None:
    assert review.fence("a ``` b", "diff").startswith("````diff\n")
    assert review.cell("a | b\nc") == "a \\| b c"


def test_plan_digest_reads_what_the_plan_model_has() -> None:
    assert review.plan_digest(DigestedPlan("x")) == DIGEST
    assert review.plan_digest(object()) is None


# ---- the real task, through `inv` -----------------------------------------------------------


def test_inv_review_fails_exactly_when_inv_check_fails(repo: Repo, isolated_env: Path) -> None:
    """On a repo whose native files do not pass (Repo's toy files), review lists the same failing checks."""
    repo.change("roles/caddy/tasks/main.yml", "caddy: tls")
    env = clean_environ(
        isolated_env, {"INVOKE_BLUMEOPS_ROOT": str(repo.root), "INVOKE_BLUMEOPS_STATE_DIR": str(repo.state)}
    )
    check = run_inv("check", "--json", env=env)
    failing = [row for row in json.loads(check.stdout)["checks"] if row["status"] == "fail"]
    assert failing, "the toy repo is expected to fail some offline check"
    result = run_inv("review", "--offline", env=env)
    assert result.returncode == 1 == check.returncode, result.stderr
    assert result.stdout.startswith(review.MARKER)
    for row in failing:
        assert f"| **fail** | {row['layer']} | {review.cell(row['name'])} |" in result.stdout
    assert "inv hosts.provision --host=indri --tags caddy" in result.stdout
    assert "live preview not run: --offline" in result.stdout
    document = json.loads(run_inv("review", "--offline", "--json", env=env).stdout)
    assert (document["exit_code"], document["error"]) == (1, None)
    assert {row["name"] for row in document["checks"] if row["status"] == "fail"} == {r["name"] for r in failing}


def test_inv_review_on_this_repo_passes(isolated_env: Path) -> None:
    result = run_inv("review", "--offline", "--since=HEAD", env=clean_environ(isolated_env), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none failed" in result.stdout


def test_unknown_since_is_one_sentence(repo: Repo) -> None:
    from invoke.exceptions import Exit

    with pytest.raises(Exit) as info:
        review.collect(ctx(repo), since="nope", live=False, offline=True, selected=[])
    assert "'nope' names no commit" in str(info.value.message)


def test_preflight_that_stops_is_the_reason_and_warnings_do_not_fail(repo: Repo) -> None:
    from invoke.exceptions import Exit

    def stops(_c: object) -> list[CheckSpec]:
        raise Exit("Setting blumeops.hosts.inventory is missing", code=1)

    broken = fake_layer("hosts", "hosts.provision", [("argument specs", warn("no specs"))], plan=HOSTS_PLAN)
    broken = Layer(**{**broken.__dict__, "preflight_checks": stops})
    document = review.collect(ctx(repo), since="HEAD", live=False, offline=False, selected=[broken])
    assert document["plans"][0]["reason"] == "Setting blumeops.hosts.inventory is missing"
    assert document["exit_code"] == 0  # a warning is for the reviewer, not a failure
    assert "| warn | hosts | argument specs |" in review.markdown(document)
