"""The shared plan model: counts, exit codes, JSON and rendering."""

from __future__ import annotations

import json

from blumeops_tasks import plan
from blumeops_tasks.plan import Change, LayerPlan, PlanBuilder, TargetPlan

DIFF = "--- before: /etc/caddy/Caddyfile\n+++ after: /etc/caddy/Caddyfile\n@@ -1 +1 @@\n-old\n+new\n"


def _hosts_plan() -> LayerPlan:
    builder = PlanBuilder("hosts")
    builder.add("indri", Change("update", "caddy : Render Caddyfile", diff=DIFF))
    builder.add("indri", Change("run", "caddy : Reload caddy"))
    builder.target("nas")
    return builder.build()


def test_counts_per_target_and_layer() -> None:
    hosts = _hosts_plan()
    assert [t.target for t in hosts.targets] == ["indri", "nas"]
    assert hosts.targets[0].counts() == {"create": 0, "update": 1, "delete": 0, "replace": 0, "run": 1}
    assert hosts.targets[1].counts()["update"] == 0
    assert hosts.has_changes


def test_exit_codes() -> None:
    quiet = LayerPlan("tailnet", (TargetPlan("homelab"),))
    broken = LayerPlan("argocd", error="cluster unreachable")
    assert plan.exit_code([quiet]) == 0
    assert plan.exit_code([quiet, _hosts_plan()]) == 2
    assert plan.exit_code([_hosts_plan(), broken]) == 1  # an error wins over changes


def test_json_document_shape() -> None:
    document = plan.to_json([_hosts_plan(), LayerPlan("argocd", error="cluster unreachable")])
    json.dumps(document)  # serialisable as is
    assert document["exit_code"] == 1
    assert document["counts"] == {"create": 0, "update": 1, "delete": 0, "replace": 0, "run": 1}
    hosts = document["layers"][0]
    assert hosts["targets"][0]["changes"][0] == {
        "action": "update",
        "resource": "caddy : Render Caddyfile",
        "diff": DIFF,
        "detail": "",
    }
    assert document["layers"][1]["error"] == "cluster unreachable"


def test_render_shows_summary_and_diffs(capsys) -> None:  # type: ignore[no-untyped-def]
    plan.render(
        [
            _hosts_plan(),
            LayerPlan("argocd", error="cluster unreachable"),
            LayerPlan("dns", available=False, note="layer not built yet"),
        ]
    )
    text = capsys.readouterr().out
    assert "changes pending" in text
    assert "no changes" in text
    assert "error: cluster unreachable" in text
    assert "layer not built yet" in text
    assert "~ [hosts/indri] update caddy : Render Caddyfile" in text
    assert "+new" in text
    assert "-old" in text
