"""The shared check runner: concurrency, per-check timeouts, aggregation, broken checks."""

from __future__ import annotations

import threading

from blumeops_tasks import preflight
from blumeops_tasks.preflight import CheckSpec, failed, ok, run_checks, warn


def test_checks_run_concurrently() -> None:
    # Every check waits at one barrier: run one after another, the barrier would break.
    count = 6
    barrier = threading.Barrier(count, timeout=5)

    def meet() -> preflight.Outcome:
        barrier.wait()
        return ok("met the others")

    results = run_checks([CheckSpec("demo", f"c{i}", meet) for i in range(count)], default_timeout=10)
    assert [r.status for r in results] == ["ok"] * count
    assert [r.name for r in results] == [f"c{i}" for i in range(count)]


def test_hanging_check_times_out_and_others_still_report() -> None:
    never = threading.Event()

    def hang() -> preflight.Outcome:
        never.wait()
        return ok("unreachable")

    specs = [
        CheckSpec("hosts", "reachable", hang, timeout=0.2),
        CheckSpec("hosts", "tool", lambda: ok("ansible-playbook 2.19")),
    ]
    results = run_checks(specs)
    hung, fine = results
    assert (hung.status, hung.detail) == ("fail", "timed out after 0.2s")
    assert "raise the timeout" in hung.fix
    assert fine.status == "ok"
    assert preflight.exit_code(results) == 1


def test_failures_are_collected_not_stopped_at_first() -> None:
    specs = [
        CheckSpec("a", "one", lambda: failed("first broke", "fix one")),
        CheckSpec("b", "two", lambda: warn("second is odd")),
        CheckSpec("c", "three", lambda: failed("third broke", "fix three")),
        CheckSpec("c", "four", lambda: ok("fine")),
    ]
    results = run_checks(specs)
    assert [(r.layer, r.name, r.status) for r in results] == [
        ("a", "one", "fail"),
        ("b", "two", "warn"),
        ("c", "three", "fail"),
        ("c", "four", "ok"),
    ]
    assert preflight.to_json(results)["exit_code"] == 1


def test_warnings_alone_do_not_fail() -> None:
    assert preflight.exit_code(run_checks([CheckSpec("a", "w", lambda: warn("meh"))])) == 0


def test_a_check_that_raises_becomes_a_failed_row_with_its_reason() -> None:
    def broken() -> preflight.Outcome:
        raise FileNotFoundError("inventory/hosts.yml not found\nsecond line")

    (result,) = run_checks([CheckSpec("hosts", "inventory", broken)])
    assert result.status == "fail"
    assert result.detail == "FileNotFoundError: inventory/hosts.yml not found"


def test_render_groups_by_layer_and_gives_a_verdict(capsys) -> None:  # type: ignore[no-untyped-def]
    results = run_checks(
        [
            CheckSpec("tailnet", "cli", lambda: failed("pulumi not found", "run `mise install`")),
            CheckSpec("argocd", "kubeconfig", lambda: ok("context minikube-indri")),
        ]
    )
    preflight.render("Preflight", results)
    text = capsys.readouterr().out
    assert text.index("argocd") < text.index("tailnet")
    assert "run `mise install`" in text
    assert "2 checks: 1 failed, 0 warnings" in text
    assert "\x1b[" not in text  # piped: plain text, no colour codes
