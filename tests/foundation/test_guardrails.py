"""Error channels and confirmation: one sentence, tool exit codes, default No, refusal without a terminal."""

from __future__ import annotations

import io

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, shell
from blumeops_tasks.tasking import task


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _ctx() -> Context:
    return Context(Config(overrides={"blumeops": {"root": "/nonexistent", "env_file": ".env"}}))


def test_unexpected_exception_becomes_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    @task
    def explode(c: Context) -> None:
        raise ValueError("bad value\nwith a second line")

    with pytest.raises(Exit) as info:
        explode(_ctx())
    assert info.value.code == 1
    assert str(info.value.message) == (
        "explode stopped on an unexpected ValueError: bad value (re-run with BLUMEOPS_DEBUG=1 for the traceback)."
    )
    monkeypatch.setenv("BLUMEOPS_DEBUG", "1")
    with pytest.raises(ValueError, match="bad value"):
        explode(_ctx())


def test_tool_failure_passes_its_exit_code_through(monkeypatch: pytest.MonkeyPatch, capfd) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TAILSCALE_API_KEY", "tskey-planted-0000")
    command = "echo fatal: key $TAILSCALE_API_KEY rejected >&2; exit 4"

    @task
    def provision(c: Context) -> None:
        shell.run(c, command)  # a real process, streamed through the redacting console

    with pytest.raises(Exit) as info:
        provision(_ctx())
    assert info.value.code == 4
    assert str(info.value.message) == f"`{command}` failed with exit code 4: fatal: key *** rejected"
    streamed = capfd.readouterr()
    assert "fatal: key *** rejected" in streamed.err
    assert "tskey-planted-0000" not in streamed.out + streamed.err


def test_interrupt_is_exit_130() -> None:
    @task
    def wait(c: Context) -> None:
        raise KeyboardInterrupt

    with pytest.raises(Exit) as info:
        wait(_ctx())
    assert (info.value.code, info.value.message) == (130, "Interrupted.")


def test_confirm_with_yes_does_not_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    console.confirm("Apply?", yes=True, action="apply the tailnet")


def test_confirm_refuses_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped "y" must not count
    with pytest.raises(console.Declined) as info:
        console.confirm("Apply?", yes=False, action="apply the tailnet")
    assert info.value.code == 1
    assert "re-run with --yes" in str(info.value.message)


@pytest.mark.parametrize(
    ("answer", "agreed"),
    [("\n", False), ("n\n", False), ("", False), ("y\n", True), ("YES\n", True), ("maybe\n", False)],
)
def test_confirm_defaults_to_no_on_a_terminal(monkeypatch: pytest.MonkeyPatch, answer: str, agreed: bool) -> None:
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    if agreed:
        console.confirm("Apply?", yes=False, action="provision indri")
    else:
        with pytest.raises(console.Declined, match=r"Nothing changed: provision indri was not confirmed\."):
            console.confirm("Apply?", yes=False, action="provision indri")


@pytest.mark.parametrize(
    ("hide", "shown_out", "shown_err"),
    [(True, False, False), ("out", False, True), ("err", True, False), (False, True, True)],
)
def test_shell_run_hides_what_it_is_told_to(capfd, hide: bool | str, shown_out: bool, shown_err: bool) -> None:  # type: ignore[no-untyped-def]
    result = shell.run(_ctx(), "echo to-out; echo to-err >&2", hide=hide)
    assert (result.stdout, result.stderr) == ("to-out\n", "to-err\n")  # captured either way
    streamed = capfd.readouterr()
    assert ("to-out" in streamed.out) is shown_out
    assert ("to-err" in streamed.err) is shown_err
