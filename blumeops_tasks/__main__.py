"""`python -m blumeops_tasks init`: `inv init` for a repo that has no tasks.py yet (run from its root)."""

from pathlib import Path

from invoke.collection import Collection
from invoke.program import Program

from blumeops_tasks import layers
from blumeops_tasks.adopt import init
from blumeops_tasks.config import compose_defaults


def main() -> None:
    ns = Collection(init)
    ns.configure(compose_defaults({layer.name: layer.defaults for layer in layers.all_layers()}, Path.cwd()))
    Program(namespace=ns, name="blumeops", binary="python -m blumeops_tasks").run()


if __name__ == "__main__":
    main()
