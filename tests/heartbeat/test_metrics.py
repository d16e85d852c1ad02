"""The heartbeat's decisions, without tools: beats from plans, the exposition format (parsed by
prometheus_client's own parser), drift transitions, the notice, the atomic write."""

from __future__ import annotations

import math
import stat
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from blumeops_tasks import heartbeat_steps as steps
from blumeops_tasks.plan import Change, LayerPlan, TargetPlan
from tests.heartbeat.webhook import webhook_receiver

DRIFTING = LayerPlan("hosts", (TargetPlan("indri", (Change("update", "caddy : config"),)), TargetPlan("sifaka")))
IN_LINE = LayerPlan("argocd", (TargetPlan("grafana"),))
FAILED = LayerPlan("tailnet", error="pulumi is not on PATH")
PENDING = {
    "head": "0123456789abcdef",
    "layers": [
        {"layer": "hosts", "state": "pending", "commits": [{}, {}, {}]},
        {"layer": "argocd", "state": "up-to-date", "commits": []},
        {"layer": "tailnet", "state": "unknown-commit", "commits": []},
    ],
}


def samples(text: str) -> dict[tuple[str, str], float]:
    """Every sample as (metric, layer label) -> value, through the client library's strict parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family
        assert family.documentation, family
        for sample in family.samples:
            found[(sample.name, sample.labels.get("layer", ""))] = sample.value
    return found


def test_beats_take_each_layers_own_exit_code_and_pending_count() -> None:
    beats = {b.layer: b for b in steps.beats([DRIFTING, IN_LINE, FAILED], PENDING)}
    assert (beats["hosts"].exit_code, beats["hosts"].drift, beats["hosts"].changes) == (2, True, 1)
    assert beats["hosts"].drifted_targets == ("indri",)
    assert beats["hosts"].pending_commits == 3
    assert (beats["argocd"].exit_code, beats["argocd"].drift, beats["argocd"].pending_commits) == (0, False, 0)
    assert (beats["tailnet"].exit_code, beats["tailnet"].drift) == (1, None)
    assert beats["tailnet"].pending_commits is None  # the last applied commit is unknown here
    assert steps.beats([IN_LINE], None)[0].pending_commits is None  # no pending report at all


def test_exposition_parses_with_help_and_type_per_family() -> None:
    text = steps.exposition(steps.beats([DRIFTING, IN_LINE, FAILED], PENDING), 1_700_000_000.25)
    values = samples(text)
    assert values[("blumeops_drift", "hosts")] == 1
    assert values[("blumeops_drift", "argocd")] == 0
    assert math.isnan(values[("blumeops_drift", "tailnet")])
    assert values[("blumeops_plan_exit_code", "hosts")] == 2
    assert values[("blumeops_plan_exit_code", "tailnet")] == 1
    assert values[("blumeops_pending_commits", "hosts")] == 3
    assert math.isnan(values[("blumeops_pending_commits", "tailnet")])
    assert values[("blumeops_last_plan_timestamp_seconds", "")] == 1_700_000_000.25
    lines = text.splitlines()
    for name in ("blumeops_drift", "blumeops_plan_exit_code", "blumeops_pending_commits"):
        assert sum(line.startswith(f"# HELP {name} ") for line in lines) == 1
        assert f"# TYPE {name} gauge" in lines
    assert text.endswith("\n")


def test_label_values_are_escaped() -> None:
    odd = LayerPlan('we"ird\\layer\nname')
    values = samples(steps.exposition(steps.beats([odd], None), 1.0))
    assert values[("blumeops_drift", 'we"ird\\layer\nname')] == 0


def test_only_a_layer_that_newly_drifts_is_notified() -> None:
    beats = steps.beats([DRIFTING, IN_LINE, FAILED], PENDING)
    assert [b.layer for b in steps.newly_drifted({}, beats)] == ["hosts"]  # never seen: notified once
    assert [b.layer for b in steps.newly_drifted({"hosts": False}, beats)] == ["hosts"]
    assert steps.newly_drifted({"hosts": True}, beats) == []
    # A failed preview keeps the layer's last known state: drift, an error, drift again is not new.
    state = steps.remembered({"tailnet": True}, beats, unsent=[])
    assert state == {"hosts": True, "argocd": False, "tailnet": True}
    # A notice that could not be sent is not remembered as sent: the next heartbeat retries it.
    assert steps.remembered({"hosts": False}, beats, unsent=["hosts"])["hosts"] is False


def test_the_notice_is_short_and_names_layer_targets_and_command() -> None:
    beats = steps.newly_drifted({}, steps.beats([DRIFTING], PENDING))
    text = steps.message(beats, "indri", "0123456789abcdef")
    assert "hosts (1 change on indri)" in text
    assert "0123456789ab" in text
    assert "inv plan --layer=hosts" in text
    assert "\n" not in text
    assert len(text) < 300


def test_write_atomically_leaves_a_world_readable_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "blumeops.prom"
    target.write_text("old\n")
    target.chmod(0o600)
    steps.write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # node_exporter runs as its own user
    assert [p.name for p in tmp_path.iterdir()] == ["blumeops.prom"]


def test_post_reports_http_failures_without_the_url() -> None:
    with webhook_receiver() as receiver:
        assert steps.post(receiver.url, "drift") is None
        receiver.status = 500
        failure = steps.post(receiver.url, "drift")
    assert failure == "the webhook answered HTTP 500"
    assert receiver.posts == [("/blumeops-drift-topic-7f3a9c", "drift")] * 2
    closed = steps.post(receiver.url, "drift", timeout=2)
    assert closed is not None
    assert "could not be reached" in closed
    assert "blumeops-drift-topic" not in closed
