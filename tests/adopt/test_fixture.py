"""A homelab laid out its own way (`ansible/…`, `pulumi/tailscale/`, `argocd/`) is adopted by configuration
alone: a copy of tests/fixtures/homelab passes `inv check` with nothing but its invoke.yaml and tasks.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from blumeops_tasks import layers
from tests.adopt.helpers import FIXTURE, adopted_repo
from tests.conftest import clean_environ, run_inv

pytestmark = pytest.mark.slow


def test_invoke_yaml_sets_every_path_setting() -> None:
    config = yaml.safe_load((FIXTURE / "invoke.yaml").read_text())["blumeops"]
    for layer in layers.all_layers():
        assert set(layer.path_settings) <= set(config.get(layer.name, {})), layer.name


def test_the_fixture_passes_inv_check_with_only_its_invoke_yaml(tmp_path: Path, isolated_env: Path) -> None:
    env = clean_environ(isolated_env)
    repo = adopted_repo(tmp_path / "homelab", env)
    result = run_inv("check", "--json", env=env, cwd=repo)
    document = json.loads(result.stdout)
    failures = [
        f"{row['layer']}/{row['name']}: {row['detail']}" for row in document["checks"] if row["status"] == "fail"
    ]
    assert result.returncode == 0, failures or result.stderr
    assert {row["layer"] for row in document["checks"]} == set(layers.names())
    paths = {row["layer"]: row for row in document["checks"] if row["name"] == "paths exist"}
    assert all(row["status"] == "ok" for row in paths.values())


def test_a_repo_using_one_layer_names_it_and_the_others_stay_out(tmp_path: Path, isolated_env: Path) -> None:
    """A homelab with only Ansible: `blumeops.layers: [hosts]`, and no failure about a Pulumi program or
    ArgoCD apps it does not have."""
    env = clean_environ(isolated_env)
    repo = adopted_repo(tmp_path / "homelab", env)
    config = yaml.safe_load((repo / "invoke.yaml").read_text())
    config["blumeops"]["layers"] = ["hosts"]
    (repo / "invoke.yaml").write_text(yaml.safe_dump(config))
    for other in ("pulumi", "argocd"):
        shutil.rmtree(repo / other)
    result = run_inv("check", "--json", env=env, cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {row["layer"] for row in json.loads(result.stdout)["checks"]} == {"hosts"}
    refused = run_inv("check", "--layer=tailnet", env=env, cwd=repo)
    assert refused.returncode == 1
    assert "'tailnet' is not in use" in refused.stderr


def test_an_unknown_layer_in_blumeops_layers_is_one_sentence(tmp_path: Path, isolated_env: Path) -> None:
    env = clean_environ(isolated_env)
    repo = adopted_repo(tmp_path / "homelab", env)
    (repo / "invoke.yaml").write_text("blumeops:\n  layers: [hosts, dns]\n")
    result = run_inv("check", env=env, cwd=repo)
    assert result.returncode == 1
    assert "blumeops.layers names 'dns'" in result.stderr
    assert "Traceback" not in result.stderr
