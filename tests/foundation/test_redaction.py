"""One redaction point: a planted secret never appears in text, tables, JSON or errors."""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

from blumeops_tasks import console, shell
from blumeops_tasks.redaction import (
    StreamRedactor,
    declare_secret_names,
    forms_of,
    is_secret_name,
    redact,
    redact_data,
)
from blumeops_tasks.tasking import task
from tests.conftest import clean_environ, run_inv

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


# --- which names are secret -------------------------------------------------------------------

SECRET_NAMES = (
    "TS_AUTHKEY",
    "GITHUB_PAT",
    "DB_PASSWD",
    "SMTP_PW",
    "GRAFANA_ADMIN_PASS",
    "TAILSCALE_API_KEY",
    "TAILSCALE_OAUTH_CLIENT_SECRET",
    "PULUMI_ACCESS_TOKEN",
    "BORG_PASSPHRASE",
    "AWS_SECRET_ACCESS_KEY",
    "OPENAI_KEY",
    "PGPASSWORD",
    "MYSQL_PWD",
    "REGISTRY_AUTH",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "OP_SESSION_my",
    "db_password",
)
ORDINARY_NAMES = (
    "PATH",
    "PWD",
    "OLDPWD",
    "KEYBOARD_LAYOUT",
    "TAILSCALE_TAILNET",
    "TAILSCALE_OAUTH_CLIENT_ID",
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE_FILE",  # a path: errors that name it stay readable
    "AWS_ACCESS_KEY_ID",
    "SSH_AUTH_SOCK",
    "SSH_PUBLIC_KEY",
    "GIT_ASKPASS",
    "TOKENIZERS_PARALLELISM",  # "false" masked would garble every line
    "XDG_SESSION_TYPE",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "HOME",
)


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_recognised(name: str) -> None:
    assert is_secret_name(name)
    assert redact("value s3cr3t-value here", {name: "s3cr3t-value"}) == "value *** here"


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)
    assert redact("value /home/op/some-value", {name: "/home/op/some-value"}) == "value /home/op/some-value"


def test_the_password_of_a_url_in_any_variable_is_secret() -> None:
    env = {"FORGE_REMOTE": "https://eblume:glpat-x8Yz%2F0123@forge.example.net/eblume/blumeops.git"}
    assert redact("cloning https://eblume:glpat-x8Yz%2F0123@forge/ ... glpat-x8Yz/0123", env) == (
        "cloning https://eblume:***@forge/ ... ***"
    )
    assert redact("https://forge.example.net/eblume", {"FORGE": "https://forge.example.net/eblume"}) == (
        "https://forge.example.net/eblume"
    )


# --- encoded forms ----------------------------------------------------------------------------

SECRET = "hunter2-Pa$$ w/rd+~é"
ENV = {"DB_PASSWD": SECRET}


def _encodings(value: str) -> dict[str, str]:
    raw = value.encode()
    quoted = urllib.parse.quote(value, safe="")
    return {
        "base64": base64.b64encode(raw).decode(),
        "base64 unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "base64url unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url": quoted,
        "url path": urllib.parse.quote(value),
        "url form": urllib.parse.quote_plus(value),
        "url lower-case escapes": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted),
        "url mixed-case escapes": quoted.replace("%2F", "%2f"),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "json": json.dumps(value)[1:-1],
    }


@pytest.mark.parametrize("form", list(_encodings(SECRET)))
def test_encoded_forms_are_masked(form: str) -> None:
    encoded = _encodings(SECRET)[form]
    assert redact(f"Authorization: {encoded};", ENV) == "Authorization: ***;"
    assert redact_data({"k": [f"x {encoded} y"]}, ENV) == {"k": ["x *** y"]}


@pytest.mark.parametrize("user", ["admin", "admin1", "admin12"])  # the value at each offset of a base64 group
def test_base64_inside_a_longer_text_is_masked(user: str) -> None:
    """`Basic {{ (user + ':' + password) | b64encode }}`: the password's bytes never show."""
    header = "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()
    shown = redact(header, ENV)
    assert "***" in shown
    # What is left around the mask is at most the partial base64 groups at either end.
    left, _, right = shown.removeprefix("Basic ").partition("***")
    assert len(right.rstrip("=")) <= 3
    assert base64.b64decode(header.removeprefix("Basic ")).decode().endswith(SECRET)
    assert len(left) <= len(base64.b64encode(f"{user}:".encode()).decode()) + 3


def test_short_values_are_never_masked_in_any_form() -> None:
    text = "on b24= 6f6e on%20"
    assert redact(text, {"SOME_TOKEN": "on"}) == text


def test_switch_words_are_not_secrets() -> None:
    assert redact("verify: false, cache: true", {"VERIFY_TOKEN": "false", "CACHE_TOKEN": "True"}) == (
        "verify: false, cache: true"
    )


# --- streams ----------------------------------------------------------------------------------


def test_a_secret_split_anywhere_across_pieces_is_masked() -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    text = f"{'A' * 40}{SECRET} and {encoded} and {SECRET.encode().hex()}\n"
    expected = redact(text, ENV)
    assert SECRET not in expected
    for cut in range(1, len(text)):
        for second in (cut + 1, cut + 7, len(text)):
            stream = StreamRedactor(ENV)
            shown = stream.feed(text[:cut]) + stream.feed(text[cut:second]) + stream.feed(text[second:])
            assert shown + stream.finish() == expected, f"cut at {cut}/{second}"


def test_a_stream_never_shows_a_partial_secret() -> None:
    stream = StreamRedactor(ENV)
    shown = stream.feed("x" * 20 + SECRET[:9])
    assert shown == "x" * 20  # the start of the secret is held back, not shown ...
    assert stream.holding
    assert stream.finish() == "***"  # ... and masked when the stream ends there
    stream = StreamRedactor(ENV)
    assert stream.feed("ends with h") == "ends with "  # one letter that could start it: held
    assert stream.finish() == "h"  # a piece shorter than 4 characters says nothing: shown


def test_holding_back_stays_within_the_longest_form() -> None:
    stream = StreamRedactor(ENV)
    longest = max(len(form) for form in forms_of(SECRET))
    for _ in range(50):
        stream.feed("hunter2-Pa$$ w/r")  # keeps looking like the start of the secret
        assert len(stream._held) < 2 * longest


def test_the_console_stream_holds_a_split_secret_across_flushes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWD", SECRET)
    target = io.StringIO()
    stream = console._RedactingStream(target)  # type: ignore[arg-type]
    stream.write("A" * 995 + SECRET[:5])
    stream.flush()  # invoke flushes after every 1000-byte read: nothing of the secret may go out
    assert target.getvalue() == "A" * 995
    stream.write(SECRET[5:] + "\n")
    stream.flush()
    assert target.getvalue() == "A" * 995 + "***\n"


def test_a_task_called_by_a_task_does_not_release_a_stream_still_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWD", SECRET)
    target = io.StringIO()

    @task
    def inner(c: Context) -> None:
        """Ends while the outer task's stream still holds the start of a secret."""

    @task
    def outer(c: Context) -> None:
        stream = console._RedactingStream(target)  # type: ignore[arg-type]
        stream.write("x" + SECRET[:6])
        inner(c)
        assert target.getvalue() == "x"
        stream.write(SECRET[6:11])  # the run ends with the secret still incomplete

    outer(_ctx())
    assert target.getvalue() == "x***"  # released, masked, when the outer task ended


def test_a_task_ending_in_another_thread_does_not_release_a_stream_still_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DB_PASSWD", SECRET)
    target = io.StringIO()
    holding, quick_done = threading.Event(), threading.Event()
    seen: list[str] = []

    @task
    def writer(c: Context) -> None:
        stream = console._RedactingStream(target)  # type: ignore[arg-type]
        stream.write("x" + SECRET[:6])
        holding.set()
        quick_done.wait(10)
        seen.append(target.getvalue())
        stream.write(SECRET[6:] + "\n")

    @task
    def quick(c: Context) -> None:
        holding.wait(10)

    thread = threading.Thread(target=writer, args=(_ctx(),))
    thread.start()
    quick(_ctx())
    quick_done.set()
    thread.join(10)
    assert seen == ["x"]  # the quick task ended first and released nothing of the secret
    assert target.getvalue() == "x***\n"


# --- a real child process through invoke -------------------------------------------------------

CHILD = "import sys; sys.stdout.write('A' * 995 + open(sys.argv[1]).read()); sys.stdout.flush()"


def _ctx() -> Context:
    return Context(Config(overrides={"blumeops": {"root": "/nonexistent", "env_file": ".env"}}))


@pytest.mark.parametrize("tail", ["\n", ""])
def test_a_secret_straddling_invokes_read_boundary_is_masked(
    tail: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The issue's reproduction: 995 bytes, then the passphrase (a 1000-byte read splits it)."""
    passphrase = "correct-horse-battery-staple-42"
    monkeypatch.setenv("BORG_PASSPHRASE", passphrase)
    secret_file = tmp_path / "passphrase"
    secret_file.write_text(passphrase + tail)

    @task
    def run_child(c: Context) -> None:
        shell.run(c, f"{sys.executable} -c {shlex.quote(CHILD)} {shlex.quote(str(secret_file))}")

    run_child(_ctx())
    streamed = capfd.readouterr().out
    assert passphrase[:4] not in streamed.replace("A" * 995, "")
    assert streamed == "A" * 995 + "***" + tail


def test_a_partial_secret_at_the_end_of_a_child_output_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    passphrase = "correct-horse-battery-staple-42"
    monkeypatch.setenv("BORG_PASSPHRASE", passphrase)
    secret_file = tmp_path / "passphrase"
    secret_file.write_text(passphrase[:12])  # output cut off mid-secret

    @task
    def run_child(c: Context) -> None:
        shell.run(c, f"{sys.executable} -c {shlex.quote(CHILD)} {shlex.quote(str(secret_file))}")

    run_child(_ctx())
    assert capfd.readouterr().out == "A" * 995 + "***"


def test_a_split_secret_never_reaches_the_terminal_of_a_real_inv(tmp_path: Path) -> None:
    """A real `inv` whose task streams a child's output; the secret comes from `.env`."""
    pat = "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"
    (tmp_path / ".env").write_text(f"GITHUB_PAT={pat}\n")
    (tmp_path / "tasks.py").write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from blumeops_tasks import shell\n"
        "from blumeops_tasks.namespace import build_namespace\n"
        "from blumeops_tasks.tasking import task\n"
        "import os, shlex\n\n"
        "@task\n"
        "def leak(c):\n"
        '    """Print 995 bytes, then the PAT, then its base64."""\n'
        "    code = \"import os, sys, base64; v = os.environ['GITHUB_PAT']; "
        "sys.stdout.write('A' * 995 + v + ' ' + base64.b64encode(v.encode()).decode())\"\n"
        "    shell.run(c, f'{sys.executable} -c {shlex.quote(code)}')\n\n"
        "ns = build_namespace(root=Path(__file__).resolve().parent)\n"
        "ns.add_task(leak)\n"
    )
    result = run_inv("leak", cwd=tmp_path, env=clean_environ(tmp_path))
    assert result.returncode == 0, result.stderr
    assert pat not in result.stdout + result.stderr
    assert base64.b64encode(pat.encode()).decode()[:12] not in result.stdout
    assert result.stdout == "A" * 995 + "*** ***"
