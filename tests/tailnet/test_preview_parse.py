"""`pulumi preview --json` documents of the documented shape -> the shared plan model."""

from __future__ import annotations

import json

from blumeops_tasks import plan as plan_model
from blumeops_tasks.tailnet.preview_parse import (
    acl_diff,
    parse_preview,
    parse_urn,
    plan_from_output,
)
from tests.tailnet.conftest import fixture_json, fixture_text


def test_no_changes() -> None:
    plan = parse_preview(fixture_json("preview_none.json"), "homelab")
    assert [t.target for t in plan.targets] == ["homelab"]
    assert plan.changes == ()
    assert plan.error is None
    assert plan_model.exit_code([plan]) == 0


def test_first_deploy_creates_resources_without_stack_or_provider_rows() -> None:
    plan = parse_preview(fixture_json("preview_create.json"), "homelab")
    assert [(c.action, c.resource) for c in plan.changes] == [
        ("create", "Acl policy"),
        ("create", "DeviceTags indri"),
        ("create", "DnsPreferences preferences"),
    ]
    assert plan_model.exit_code([plan]) == 2
    acl, tags, prefs = plan.changes
    # The policy as a readable diff from nothing, never the escaped string.
    assert acl.diff.startswith("--- policy (tailnet now)\n+++ policy (this repo)\n")
    assert '+  "tagOwners": {\n' in acl.diff
    assert "\\n" not in acl.diff
    assert "\\t" not in acl.diff
    assert tags.diff == '+ deviceId: "nAbC123CNTRL"\n+ tags: ["tag:homelab", "tag:indri"]\n'
    assert prefs.diff == "+ magicDns: true\n"


def test_update_shows_the_policy_as_a_unified_diff_of_pretty_json() -> None:
    plan = parse_preview(fixture_json("preview_update.json"), "homelab")
    acl, tags = plan.changes
    assert (acl.action, acl.resource, acl.detail) == ("update", "Acl policy", "changes acl")
    assert acl.diff == (
        "--- policy (tailnet now)\n"
        "+++ policy (this repo)\n"
        "@@ -1,6 +1,9 @@\n"
        " {\n"
        '   "tagOwners": {\n'
        '     "tag:indri": [\n'
        '+      "group:admins"\n'
        "+    ],\n"
        '+    "tag:nas": [\n'
        '       "group:admins"\n'
        "     ]\n"
        "   },\n"
    )
    assert (tags.action, tags.resource, tags.detail) == ("update", "DeviceTags indri", "changes tags")
    assert tags.diff == '- tags: ["tag:indri"]\n+ tags: ["tag:homelab", "tag:indri"]\n'


def test_replace_sequence_is_one_replace() -> None:
    plan = parse_preview(fixture_json("preview_replace.json"), "homelab")
    assert len(plan.changes) == 1
    change = plan.changes[0]
    assert (change.action, change.resource) == ("replace", "DeviceTags sifaka")
    assert change.detail == "replaced because deviceId changed"
    assert change.diff == '- deviceId: "nOLD111CNTRL"\n+ deviceId: "nNEW222CNTRL"\n'
    assert plan.counts()["replace"] == 1


def test_delete() -> None:
    plan = parse_preview(fixture_json("preview_delete.json"), "homelab")
    (change,) = plan.changes
    assert (change.action, change.resource) == ("delete", "DnsNameservers nameservers")
    assert change.diff == '- nameservers: ["1.1.1.1", "9.9.9.9"]\n'


def test_error_diagnostics_become_the_plan_error() -> None:
    plan = parse_preview(fixture_json("preview_error.json"), "homelab")
    assert plan.error == (
        "tailscale:index/deviceTags:DeviceTags resource 'indri' has a problem: "
        'Failed to find device with hostname "indri"; preview failed'
    )
    assert plan_model.exit_code([plan]) == 1


def test_output_with_a_failing_exit_code_and_no_json_names_the_meaning() -> None:
    plan = plan_from_output("", "error: no stack named 'homelab' found\n", 6, "homelab")
    assert plan.error == (
        "pulumi preview failed with exit code 6 (stack not found (create it with `inv tailnet.init`)): "
        "error: no stack named 'homelab' found"
    )


def test_output_with_json_and_error_diagnostics_keeps_the_diagnostics() -> None:
    plan = plan_from_output(fixture_text("preview_error.json"), "", 4, "homelab")
    assert plan.error is not None
    assert plan.error.startswith("tailscale:index/deviceTags:DeviceTags resource")


def test_output_exit_code_without_error_diagnostics_still_fails() -> None:
    plan = plan_from_output(fixture_text("preview_none.json"), "error: authentication failed\n", 3, "homelab")
    assert plan.error == (
        "pulumi preview failed with exit code 3 (authentication failed (backend login or cloud credentials)): "
        "error: authentication failed"
    )


def test_clean_output_parses() -> None:
    plan = plan_from_output(fixture_text("preview_update.json"), "", 0, "homelab")
    assert plan.counts()["update"] == 2
    assert plan.error is None


def test_json_form_of_the_plan() -> None:
    document = plan_model.to_json([parse_preview(fixture_json("preview_update.json"), "homelab")])
    assert document["exit_code"] == 2
    assert document["counts"]["update"] == 2
    assert document["layers"][0]["targets"][0]["changes"][0]["resource"] == "Acl policy"
    json.dumps(document)  # serialisable as is


def test_comment_only_policy_change_diffs_the_raw_text() -> None:
    diff, note = acl_diff('// a\n{"x": 1}\n', '// b\n{"x": 1}\n')
    assert note == "comments or formatting only"
    assert "-// a\n+// b\n" in diff


def test_unparseable_policy_text_is_diffed_raw() -> None:
    diff, _ = acl_diff("{broken", '{"x": 1}')
    assert "-{broken\n" in diff


def test_parse_urn() -> None:
    assert parse_urn("urn:pulumi:homelab::blumeops-tailnet::tailscale:index/acl:Acl::policy") == (
        "tailscale:index/acl:Acl",
        "policy",
    )
    assert parse_urn("urn:pulumi:s::p::parent:T$tailscale:index/deviceTags:DeviceTags::indri")[0] == (
        "tailscale:index/deviceTags:DeviceTags"
    )


# --- a refreshed preview: a device retagged in the admin console ----------------------------------


def test_a_console_retag_seen_by_the_refresh_is_a_pending_update() -> None:
    plan = parse_preview(fixture_json("preview_drift.json"), "homelab")
    (change,) = plan.changes
    assert (change.action, change.resource) == ("update", "DeviceTags indri")
    assert change.diff == '- tags: ["tag:homelab", "tag:indri"]\n+ tags: ["tag:homelab", "tag:indri", "tag:k8s-api"]\n'
    assert "changed outside Pulumi: tags" in change.detail
    assert "DeviceTags indri (tags)" in plan.note
    assert plan_model.exit_code([plan]) == 2


def test_a_refresh_that_found_nothing_changed_is_neither_a_change_nor_a_note() -> None:
    document = fixture_json("preview_drift.json")
    document["steps"] = [step for step in document["steps"] if "deviceTags" not in step["urn"]]
    plan = parse_preview(document, "homelab")
    assert (plan.changes, plan.note) == ((), "")
    assert plan_model.exit_code([plan]) == 0


def test_drift_already_matching_the_program_is_noted_but_not_pending() -> None:
    document = fixture_json("preview_drift.json")
    document["steps"] = [step for step in document["steps"] if step["op"] != "update"]
    plan = parse_preview(document, "homelab")
    assert plan.changes == ()
    assert "DeviceTags indri (tags)" in plan.note
    assert plan_model.exit_code([plan]) == 0
