"""The policy guard: HuJSON parsing, declared tags, lockout — on the shipped policy and broken variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from blumeops_tasks.tailnet import checks
from blumeops_tasks.tailnet.policy import (
    Lockout,
    PolicyError,
    lockout_problems,
    parse_hujson,
    pretty,
    tags_used,
    undeclared_tags,
)
from tests.tailnet.conftest import OPERATOR, SHIPPED

LOCKOUT = Lockout(OPERATOR, ("tag:indri", "indri"))


def shipped() -> str:
    return (SHIPPED / "policy.hujson").read_text(encoding="utf-8")


# --- HuJSON -------------------------------------------------------------------------------------


def test_hujson_comments_and_trailing_commas() -> None:
    text = '{\n  // line\n  "a": [1, 2,], /* block\n  spanning */ "b": {"c": "x // not a comment",},\n}\n'
    assert parse_hujson(text) == {"a": [1, 2], "b": {"c": "x // not a comment"}}


def test_hujson_keeps_escaped_quotes_and_slashes_in_strings() -> None:
    assert parse_hujson('{"a": "say \\"hi\\" /* no */",}') == {"a": 'say "hi" /* no */'}


def test_hujson_error_names_file_line_and_column() -> None:
    text = '{\n  "groups": {\n    "group:a": ["x"]\n    "group:b": [],\n  },\n}\n'
    with pytest.raises(PolicyError) as err:
        parse_hujson(text, "policy.hujson")
    assert str(err.value).startswith("policy.hujson:4:5: ")
    assert "\n" not in str(err.value)


def test_hujson_unterminated_block_comment_names_where_the_input_ends() -> None:
    with pytest.raises(PolicyError, match=r"^p\.hujson:3:8: .*end of input"):
        parse_hujson('{\n  /* open\n"a": 1}', "p.hujson")


def test_hujson_is_read_by_the_json5_library(monkeypatch: pytest.MonkeyPatch) -> None:
    import json5

    seen: list[str] = []
    real = json5.loads
    monkeypatch.setattr(json5, "loads", lambda text, **kw: seen.append(text) or real(text, **kw))
    assert parse_hujson(shipped()) == real(shipped())
    assert seen == [shipped()]


def test_hujson_must_be_an_object() -> None:
    with pytest.raises(PolicyError, match="must be a JSON object, got list"):
        parse_hujson("[1, 2]")


def test_pretty_is_stable_two_space_json() -> None:
    assert pretty({"b": [1], "a": "x"}) == '{\n  "b": [\n    1\n  ],\n  "a": "x"\n}\n'


# --- shipped policy -----------------------------------------------------------------------------


def test_shipped_policy_passes_every_check() -> None:
    policy = parse_hujson(shipped())
    assert undeclared_tags(policy) == []
    assert lockout_problems(policy, LOCKOUT) == []
    assert {"groups", "tagOwners", "grants", "ssh", "tests"} <= set(policy)


def test_tags_used_covers_rules_tests_ssh_and_owner_values() -> None:
    policy = parse_hujson(shipped())
    used = tags_used(policy)
    assert used["tag:indri"] == "grants"
    assert used["tag:k8s-api"] == "grants"
    assert used["tag:nas"] == "grants"
    assert used["tag:k8s"] == "grants"


# --- undeclared tags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"dst": ["tag:k8s-api"]', '"dst": ["tag:kube"]', "tag:kube (used in grants)"),
        ('["tag:indri", "tag:homelab"]', '["tag:indri", "tag:servers"]', "tag:servers (used in ssh)"),
        ('"accept": ["tag:k8s-api:6443"]', '"accept": ["tag:api:6443"]', "tag:api (used in tests)"),
        ('"tag:k8s":     ["group:admins", "tag:k8s-api"]', '"tag:k8s": ["tag:ci"]', "tag:ci (used in tagOwners)"),
    ],
)
def test_undefined_tag_is_named_with_its_section(old: str, new: str, expected: str) -> None:
    text = shipped()
    assert old in text
    assert undeclared_tags(parse_hujson(text.replace(old, new))) == [expected]


def test_device_tags_must_be_declared_too() -> None:
    policy = parse_hujson(shipped())
    assert undeclared_tags(policy, {"tag:printer": "devices.yaml devices.sifaka"}) == [
        "tag:printer (used in devices.yaml devices.sifaka)"
    ]


@pytest.mark.parametrize(("strict", "status"), [(False, "warn"), (True, "fail")])
def test_undeclared_tag_is_a_house_rule_naming_the_resource(strict: bool, status: str) -> None:
    outcome = checks.tags_outcome(parse_hujson(shipped()), {"tag:ghost": "DeviceTags indri"}, "policy.hujson", strict)
    assert outcome.status == status
    assert outcome.detail == "undeclared tag: tag:ghost (used in DeviceTags indri)"
    assert outcome.fix.startswith("declare each in tagOwners in policy.hujson")


def test_a_broken_policy_fails_its_syntax_row_with_file_and_line(tmp_path: Path) -> None:
    broken = shipped().replace('"group:admins": ["operator@example.com"],', '"group:admins": ["operator@example.com"')
    path = tmp_path / "policy.hujson"
    path.write_text(broken, encoding="utf-8")
    policy = checks.read_policy(path)
    assert policy.data is None
    assert policy.syntax.status == "fail"
    assert policy.syntax.detail.startswith("policy.hujson:14:")
    assert "line and column" in policy.syntax.fix


def test_no_policy_file_is_not_checkable_rather_than_failed(tmp_path: Path) -> None:
    policy = checks.read_policy(tmp_path / "policy.hujson")
    assert (policy.data, policy.syntax.status) == (None, "skip")
    assert "blumeops.tailnet.policy" in policy.syntax.fix


# --- lockout guard ------------------------------------------------------------------------------


def test_dropping_ssh_from_the_tests_is_refused_with_the_path_named() -> None:
    text = shipped().replace('"accept": ["tag:indri:22", "tag:indri:443"', '"accept": ["tag:indri:443"')
    assert lockout_problems(parse_hujson(text), LOCKOUT) == [
        "policy tests no longer guarantee operator@example.com → tag:indri:22 (SSH)"
    ]


def test_dropping_the_operator_test_names_every_path() -> None:
    policy = parse_hujson(shipped())
    policy["tests"] = [t for t in policy["tests"] if t["src"] != OPERATOR]
    assert lockout_problems(policy, LOCKOUT) == [
        "policy tests no longer guarantee operator@example.com → tag:indri:22 (SSH)",
        "policy tests no longer guarantee operator@example.com → tag:indri:443 (HTTPS)",
        "policy tests no longer guarantee operator@example.com → tag:indri:6443 (Kubernetes API)",
    ]


def test_a_test_that_denies_the_operator_is_refused() -> None:
    policy = parse_hujson(shipped())
    policy["tests"].append({"src": OPERATOR, "deny": ["tag:indri:6443"]})
    assert lockout_problems(policy, LOCKOUT) == [
        "policy tests deny operator@example.com → tag:indri:6443 (Kubernetes API)"
    ]


def test_tests_for_another_user_do_not_count() -> None:
    policy = parse_hujson(shipped())
    for test in policy["tests"]:
        if test["src"] == OPERATOR:
            test["src"] = "someone@example.com"
    assert len(lockout_problems(policy, LOCKOUT)) == 3


def test_indri_by_host_alias_counts() -> None:
    policy = parse_hujson(shipped())
    policy["tests"][0]["accept"] = ["indri:22", "indri:443", "indri:6443"]
    assert lockout_problems(policy, LOCKOUT) == []


def test_ssh_rule_removed_is_refused_when_indri_runs_tailscale_ssh() -> None:
    policy = parse_hujson(shipped())
    policy["ssh"] = [rule for rule in policy["ssh"] if "tag:indri" not in rule["dst"]]
    assert lockout_problems(policy, LOCKOUT) == [
        "no ssh rule (accept or check) lets operator@example.com in to tag:indri"
    ]
    assert lockout_problems(policy, Lockout(OPERATOR, ("tag:indri",), tailscale_ssh=False)) == []


def test_ssh_rule_through_a_group_or_autogroup_counts() -> None:
    policy = parse_hujson(shipped())
    rule = next(r for r in policy["ssh"] if "tag:indri" in r["dst"])
    rule["src"] = ["autogroup:member"]
    assert lockout_problems(policy, LOCKOUT) == []
    policy["groups"]["group:admins"] = ["someone@example.com"]
    rule["src"] = ["group:admins"]
    assert lockout_problems(policy, LOCKOUT) == [
        "no ssh rule (accept or check) lets operator@example.com in to tag:indri"
    ]


@pytest.mark.parametrize("strict", [False, True])
def test_lockout_breach_fails_whatever_the_lint_setting_and_the_fix_shows_the_test_to_keep(strict: bool) -> None:
    policy = parse_hujson(shipped())
    policy["tests"] = []
    outcome = checks.lockout_outcome(policy, LOCKOUT, "policy.hujson", strict)
    assert outcome.status == "fail"  # a guardrail (the operator would be locked out), not a house rule
    assert outcome.fix.startswith(
        'keep a test like {"src": "operator@example.com", '
        '"accept": ["tag:indri:22", "tag:indri:443", "tag:indri:6443"]}'
    )


def test_required_ports_come_from_configuration() -> None:
    policy = parse_hujson(shipped())
    lockout = Lockout(OPERATOR, ("tag:indri",), ports={8443: "admin UI"}, tailscale_ssh=False)
    assert lockout_problems(policy, lockout) == [
        "policy tests no longer guarantee operator@example.com → tag:indri:8443 (admin UI)"
    ]


def test_an_operator_the_policy_never_names_is_said_to_be_unconfigured() -> None:
    policy = parse_hujson(shipped())
    outcome = checks.lockout_outcome(policy, Lockout("someone@else.example", ("tag:indri",)), "policy.hujson", False)
    assert outcome.status == "warn"
    assert outcome.detail == (
        "the operator someone@else.example appears nowhere in policy.hujson, so the lockout guard cannot hold"
    )
    assert "blumeops.tailnet.operator" in outcome.fix
