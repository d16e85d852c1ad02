"""Run the Pulumi program under the SDK's mocks and report what it would create, as JSON.

`python -m blumeops_tasks.tailnet.mock_runner --dir pulumi --stack homelab` is what `inv check`
runs (in a subprocess, with a timeout, so `inv` itself never imports pulumi). The stack's config
comes from `Pulumi.<stack>.yaml`, devices are "found" by `getDevice` with a node id derived from
their hostname (`mock_node_id`), and nothing leaves the machine: no CLI, no provider, no network.

Output: `{"resources": [{"type", "name", "inputs"}], "invokes": [{"token", "args"}]}` (sorted);
a program error exits 1 with one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STACK_TYPE = "pulumi:pulumi:Stack"
GET_DEVICE = "tailscale:index/getDevice:getDevice"
TAILNET_KEY = "tailscale:index/tailnetKey:TailnetKey"


def mock_node_id(hostname: str) -> str:
    return f"node-{hostname}"


def _config_strings(config: Mapping[str, Any]) -> dict[str, str]:
    """Stack config as the engine hands it to programs: strings, structured values as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def make_mocks() -> Any:
    """A Mocks instance that records every resource and invoke."""
    import pulumi

    class RecordingMocks(pulumi.runtime.Mocks):
        def __init__(self) -> None:
            self.resources: list[dict[str, Any]] = []
            self.invokes: list[dict[str, Any]] = []

        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            if args.typ != STACK_TYPE:
                self.resources.append({"type": args.typ, "name": args.name, "inputs": dict(args.inputs)})
            outputs = dict(args.inputs)
            if args.typ == TAILNET_KEY:
                outputs["key"] = f"tskey-auth-mock-{args.name}"
            return f"{args.name}-id", outputs

        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            self.invokes.append({"token": args.token, "args": dict(args.args)})
            if args.token == GET_DEVICE:
                name = args.args.get("hostname") or str(args.args.get("name", "")).split(".", 1)[0]
                device = {
                    "id": mock_node_id(name),
                    "nodeId": mock_node_id(name),
                    "hostname": name,
                    "name": f"{name}.example.ts.net",
                    "addresses": ["100.64.0.1"],
                    "tags": [],
                }
                return device, []
            return {}, []

    return RecordingMocks()


def run_program(project_dir: Path, stack: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run `<project_dir>/__main__.py` under mocks; the config defaults to the stack file's."""
    import pulumi
    from blumeops_tasks.tailnet.pulumi_cli import read_project, stack_config

    project = read_project(project_dir).name or "project"
    mocks = make_mocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(_config_strings(stack_config(project_dir, stack) if config is None else config))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # waits for every registration to finish
    def program() -> None:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

    with contextlib.redirect_stdout(sys.stderr):  # the program's own prints never mix into the report
        program()
    resources = sorted(mocks.resources, key=lambda r: (r["type"], r["name"]))
    return {"resources": resources, "invokes": mocks.invokes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", required=True, type=Path, help="the Pulumi project directory")
    parser.add_argument("--stack", required=True, help="the stack whose config to use")
    args = parser.parse_args(argv)
    try:
        report = run_program(args.dir.resolve(), args.stack)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sys.stderr.write(f"the program failed under mocks: {type(exc).__name__}: {message}\n")
        return 1
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
