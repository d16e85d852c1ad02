"""Every native path is a setting, and `inv check` says in one sentence when one points nowhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from invoke.collection import Collection
from invoke.config import Config
from invoke.context import Context

from blumeops_tasks import cross_layer, layers
from blumeops_tasks import preflight as runner
from blumeops_tasks.layer import Layer
from blumeops_tasks.namespace import build_namespace
from blumeops_tasks.plan import LayerPlan
from tests.adopt.helpers import FIXTURE
from tests.conftest import REPO, clean_environ, run_inv


def context(root: Path = REPO, **overrides: object) -> Context:
    config = Config(defaults=build_namespace(root).configuration())
    config.load_overrides({"blumeops": overrides})
    return Context(config=config)


def demo_layer(calls: list[str]) -> Layer:
    """A layer no core code knows by name: the paths row comes from its path_settings alone."""

    def offline(c: Context) -> list[runner.CheckSpec]:
        calls.append("offline")
        return [runner.CheckSpec("demo", "own check", lambda: runner.ok("fine"))]

    def preflight(c: Context) -> list[runner.CheckSpec]:
        calls.append("preflight")
        return []

    def plan(c: Context) -> LayerPlan:
        calls.append("plan")
        return LayerPlan("demo")

    return Layer(
        name="demo",
        help="a demo layer",
        collection=Collection("demo"),
        path_settings=("files", "config"),
        offline_checks=offline,
        preflight_checks=preflight,
        plan=plan,
        apply_task="demo.apply",
    )


@pytest.mark.parametrize("layer", layers.all_layers(), ids=lambda layer: layer.name)
def test_every_layer_has_a_paths_row_that_passes_on_this_repo(layer: Layer) -> None:
    outcome = cross_layer.paths_check(context(), layer).run()
    assert outcome.status == "ok", outcome.detail


def test_a_misspelled_path_is_one_sentence_naming_the_setting() -> None:
    (hosts,) = layers.select("hosts")
    c = context(hosts={"inventory": "ansible/inventry"})
    outcome = cross_layer.paths_check(c, hosts).run()
    assert outcome.status == "fail"
    assert outcome.detail == "blumeops.hosts.inventory = ansible/inventry does not exist; set it in invoke.yaml"


def test_a_layer_whose_paths_point_nowhere_gets_only_that_row(tmp_path: Path) -> None:
    calls: list[str] = []
    layer = demo_layer(calls)
    (tmp_path / "files").mkdir()
    c = context(tmp_path, demo={"files": "files", "config": "demo.cfg"})
    specs = cross_layer.layer_specs(c, (layer,), "offline")
    assert [spec.name for spec in specs] == ["paths exist"]
    assert calls == []
    outcome = specs[0].run()
    assert (outcome.status, outcome.detail) == (
        "fail",
        "blumeops.demo.config = demo.cfg does not exist; set it in invoke.yaml",
    )

    (tmp_path / "demo.cfg").write_text("")
    specs = cross_layer.layer_specs(c, (layer,), "offline")
    assert [spec.name for spec in specs] == ["paths exist", "own check"]
    assert specs[0].run() == runner.ok("found files, demo.cfg")


def test_preflight_and_plan_stop_at_the_same_sentence(tmp_path: Path) -> None:
    calls: list[str] = []
    layer = demo_layer(calls)
    c = context(tmp_path, demo={"files": ".", "config": "demo.cfg"})
    (row,) = cross_layer.layer_specs(c, (layer,), "preflight")
    assert row.run().detail == "blumeops.demo.config = demo.cfg does not exist; set it in invoke.yaml"
    (plan,) = cross_layer.collect_plans(c, (layer,))
    assert plan.error == "blumeops.demo.config = demo.cfg does not exist; set it in invoke.yaml"
    assert calls == []


def test_two_missing_paths_are_named_together(tmp_path: Path) -> None:
    c = context(tmp_path, demo={"files": "f", "config": "c"})
    outcome = cross_layer.paths_check(c, demo_layer([])).run()
    assert outcome.detail == "blumeops.demo.files = f, blumeops.demo.config = c do not exist; set them in invoke.yaml"


@pytest.mark.slow
def test_inv_check_fails_on_a_path_that_points_nowhere(tmp_path: Path, isolated_env: Path) -> None:
    """The fixture's layout with every hosts path present but the inventory misspelled in invoke.yaml."""
    env = clean_environ(isolated_env)
    shutil.copy(FIXTURE / "tasks.py", tmp_path / "tasks.py")
    config = yaml.safe_load((FIXTURE / "invoke.yaml").read_text())
    hosts = config["blumeops"]["hosts"]
    for key in ("roles", "playbooks"):
        (tmp_path / hosts[key]).mkdir(parents=True)
    (tmp_path / hosts["ansible_config"]).write_text("[defaults]\n")
    hosts["inventory"] = "ansible/inventry"
    (tmp_path / "invoke.yaml").write_text(yaml.safe_dump(config))
    result = run_inv("check", "--layer=hosts", "--json", env={**env, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert result.returncode == 1
    (row,) = json.loads(result.stdout)["checks"]
    assert (row["name"], row["status"]) == ("paths exist", "fail")
    assert row["detail"] == "blumeops.hosts.inventory = ansible/inventry does not exist; set it in invoke.yaml"
