"""Bad local input (invoke.yaml, INVOKE_BLUMEOPS_*, .env): one sentence naming the file or variable, exit 1.

Every case runs a real `inv` in a temporary repo (a copy of tasks.py and the file under test).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blumeops_tasks import layers
from blumeops_tasks.config import compose_defaults, project_config_problem
from tests.conftest import REPO, clean_environ, run_inv


def _repo(tmp_path: Path, **files: str | bytes) -> Path:
    shutil.copy(REPO / "tasks.py", tmp_path / "tasks.py")
    for name, content in files.items():
        path = tmp_path / name.replace("_", ".", 1) if name.startswith("invoke_") else tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return tmp_path


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("args", [("--list",), ("config",)])
def test_invoke_yaml_syntax_error_names_the_file_and_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    repo = _repo(tmp_path, invoke_yaml="blumeops:\n  hosts:\n    inventory: [inventory\n  argocd: {}\n")
    result = run_inv(*args, cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 1
    sentence = _one_sentence(result.stderr)
    assert str(repo / "invoke.yaml") in sentence
    assert "line 4" in sentence
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "setting"),
    [
        ('blumeops:\n  hosts: "x"\n', "blumeops.hosts"),  # invoke: AmbiguousMergeError
        ("blumeops:\n  argocd:\n", "blumeops.argocd"),  # an empty value where a mapping merges
        ("blumeops:\n  check_timeout: {seconds: 3}\n", "blumeops.check_timeout"),
        ("blumeops:\n  preflight_timeout: 10s\n", "blumeops.preflight_timeout"),
        ("blumeops:\n  lint:\n    strict: maybe\n", "blumeops.lint.strict"),
        ("run: echo\n", "run"),  # invoke's own settings too
    ],
)
def test_invoke_yaml_wrong_type_names_the_setting(tmp_path: Path, content: str, setting: str) -> None:
    repo = _repo(tmp_path, invoke_yaml=content)
    for args in (("--list",), ("config", "--json")):
        result = run_inv(*args, cwd=repo, env=clean_environ(tmp_path))
        assert result.returncode == 1, result.stdout
        sentence = _one_sentence(result.stderr)
        assert str(repo / "invoke.yaml") in sentence
        assert f"{setting} must be" in sentence


def test_invoke_yaml_problem_with_json_is_one_json_document(tmp_path: Path) -> None:
    repo = _repo(tmp_path, invoke_yaml='blumeops:\n  hosts: "x"\n')
    result = run_inv("plan", "--json", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1
    assert "blumeops.hosts must be" in document["error"]
    assert "Traceback" not in result.stderr


def test_invoke_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    repo = _repo(tmp_path, invoke_yaml="- blumeops\n")
    result = run_inv("--list", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 1
    assert "invoke.yaml must be a mapping" in _one_sentence(result.stderr)


def test_invoke_json_syntax_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path, invoke_json='{"blumeops": {"check_timeout": 3,}}')
    result = run_inv("--list", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 1
    assert f"{repo / 'invoke.json'} is not valid JSON" in _one_sentence(result.stderr)


def test_number_setting_from_the_environment_that_is_not_a_number(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    env = clean_environ(tmp_path, {"INVOKE_BLUMEOPS_PREFLIGHT_TIMEOUT": "soon"})
    result = run_inv("config", cwd=repo, env=env)
    assert result.returncode == 1
    assert "INVOKE_BLUMEOPS_PREFLIGHT_TIMEOUT must be a number" in _one_sentence(result.stderr)


def test_dotenv_with_a_non_utf8_byte_names_the_file_and_line(tmp_path: Path) -> None:
    repo = _repo(tmp_path, **{".env": b"TAILSCALE_TAILNET=example.com\nNOTE=caf\xe9\n"})
    result = run_inv("config", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 1
    sentence = _one_sentence(result.stderr)
    assert str(repo / ".env") in sentence
    assert "line 2" in sentence
    assert "UTF-8" in sentence


def test_dotenv_lines_that_do_not_parse_are_named(tmp_path: Path) -> None:
    repo = _repo(tmp_path, **{".env": "TAILSCALE_TAILNET=example.com\nthis is not an assignment\nB='open\n"})
    result = run_inv("config", "--json", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 0, result.stderr
    sentence = _one_sentence(result.stderr)
    assert str(repo / ".env") in sentence
    assert "line 2, 3" in sentence


def test_dotenv_error_in_a_json_task_is_one_json_document(tmp_path: Path) -> None:
    repo = _repo(tmp_path, **{".env": b"\xff\xfeA=1\n"})
    result = run_inv("config", "--json", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1
    assert str(repo / ".env") in document["error"]


def test_valid_configs_pass_unchanged(tmp_path: Path) -> None:
    """The shipped repo and the adopted-homelab fixture: nothing to say, and `inv config` works."""
    defaults = compose_defaults({layer.name: layer.defaults for layer in layers.all_layers()}, tmp_path)
    assert project_config_problem(REPO, defaults, {}) == ""
    assert project_config_problem(REPO / "tests" / "fixtures" / "homelab", defaults, {}) == ""
    repo = _repo(tmp_path, invoke_yaml="blumeops:\n  check_timeout: 5\n  hosts:\n    ssh_timeout: 2.5\n")
    result = run_inv("config", "--json", cwd=repo, env=clean_environ(tmp_path))
    assert result.returncode == 0, result.stderr
