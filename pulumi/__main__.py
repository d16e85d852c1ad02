"""Entry point pulumi runs: read the stack config, build the tailnet (see blumeops_tailnet.py)."""

import sys
from pathlib import Path

import pulumi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from blumeops_tailnet import build_stack, config_from_pulumi  # noqa: E402

build_stack(HERE, config_from_pulumi(pulumi.Config()))
