"""One redaction point: a planted secret never appears in text, tables, JSON or errors."""

from __future__ import annotations

import pytest
from invoke.exceptions import Exit

from blumeops_tasks import console
from blumeops_tasks.redaction import declare_secret_names, redact, redact_data
from tests.conftest import run_inv

PLANTED = "tskey-planted-9f8e7d6c5b4a"


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TAILSCALE_API_KEY", PLANTED)
    return PLANTED


def test_text_table_json_and_errors_are_redacted(planted: str, capsys) -> None:  # type: ignore[no-untyped-def]
    console.out(f"using key {planted}")
    console.note(f"note {planted}")
    console.error(f"error {planted}")
    console.table("t", ["k", "v"], [["key", planted * 3]])  # long enough to wrap in a narrow column
    console.print_json({"key": planted, "nested": [{"v": f"x{planted}y"}], planted: 1})
    captured = capsys.readouterr()
    assert planted not in captured.out + captured.err
    assert captured.out.count("***") >= 5
    with pytest.raises(Exit) as info:
        console.fail(f"could not authenticate with {planted}")
    assert planted not in str(info.value.message)


def test_declared_names_are_secret_even_without_a_secret_looking_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BORG_REPO_URL_FOR_TEST", "ssh://backup@nas/borg")
    assert redact("repo ssh://backup@nas/borg") == "repo ssh://backup@nas/borg"
    declare_secret_names(["BORG_REPO_URL_FOR_TEST"])
    assert redact("repo ssh://backup@nas/borg") == "repo ***"


def test_short_values_are_left_alone() -> None:
    assert redact("on", {"SOME_TOKEN": "on"}) == "on"
    assert redact_data({"a": ["xsecretx"]}, {"MY_SECRET": "secret"}) == {"a": ["x***x"]}


def test_secret_never_reaches_the_terminal_through_a_real_error(planted: str) -> None:
    # An unknown layer name is echoed back in the error sentence: the secret in it must not be.
    result = run_inv("check", f"--layer={planted}")
    assert result.returncode == 1
    assert planted not in result.stdout + result.stderr
    assert "Unknown layer '***'" in result.stderr
    assert "Traceback" not in result.stderr
