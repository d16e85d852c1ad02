"""The layer contract: every registered layer provides what the root commands rely on."""

from __future__ import annotations

import subprocess
import sys

import pytest
from invoke.config import Config
from invoke.context import Context

from blumeops_tasks import layers
from blumeops_tasks.layer import deferred, owned_paths
from blumeops_tasks.namespace import build_namespace
from tests.conftest import REPO


def test_deferred_imports_on_first_call_only() -> None:
    probe = (
        "import sys; from blumeops_tasks.layer import deferred; "
        "f = deferred('json.decoder:JSONDecoder'); "
        "before = 'json.decoder' in sys.modules; f(); print(before, 'json.decoder' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-S", "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
    assert deferred("os.path:join")("a", "b") == "a/b"


@pytest.mark.parametrize("layer", layers.all_layers(), ids=lambda layer: layer.name)
def test_every_layer_fulfils_the_contract(layer) -> None:  # type: ignore[no-untyped-def]
    assert layer.collection.task_names, f"{layer.name} has no tasks"
    assert layer.apply_task.split(".")[0] == layer.name
    assert layer.apply_task.split(".", 1)[1] in layer.collection.task_names
    paths = owned_paths(Context(config=Config(defaults=build_namespace(REPO).configuration())), layer)
    assert paths, f"{layer.name} owns no path in this repo"
    assert all((REPO / path.rstrip("/")).exists() for path in paths), paths
    for name in (*layer.secret_env, *layer.env):
        assert name in (REPO / ".env.example").read_text(), f"{name} is missing from .env.example"


def test_an_empty_path_setting_owns_nothing() -> None:
    """Empty means "this repo has no such file" (e.g. no ansible.cfg): never the whole repo."""
    c = Context(config=Config(defaults=build_namespace(REPO).configuration()))
    (hosts,) = layers.select("hosts", c)
    c.config["blumeops"]["hosts"]["ansible_config"] = ""
    assert "ansible.cfg" not in owned_paths(c, hosts)
    assert all(path for path in owned_paths(c, hosts))
