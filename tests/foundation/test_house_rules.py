"""Our own conventions are lint: a warning by default, a failure only when blumeops.lint.strict is on."""

from __future__ import annotations

from invoke.config import Config
from invoke.context import Context

from blumeops_tasks.config import lint_strict
from blumeops_tasks.namespace import build_namespace
from blumeops_tasks.preflight import house_rule
from tests.conftest import REPO


def test_house_rule_warns_unless_strict() -> None:
    assert house_rule(False, "no meta/argument_specs.yml").status == "warn"
    assert house_rule(True, "no meta/argument_specs.yml").status == "fail"


def test_lint_is_not_strict_by_default() -> None:
    c = Context(config=Config(defaults=build_namespace(REPO).configuration()))
    assert lint_strict(c) is False
    c.config["blumeops"]["lint"]["strict"] = True
    assert lint_strict(c) is True


def test_a_skip_is_reported_but_never_fails() -> None:
    from blumeops_tasks.preflight import CheckSpec, exit_code, run_checks, skipped

    results = run_checks([CheckSpec("argocd", "helm app", lambda: skipped("rendered by ArgoCD"))])
    assert [r.status for r in results] == ["skip"]
    assert exit_code(results) == 0
