"""blumeops_tasks: glue and guardrails for the blumeops homelab.

Importing this package must stay cheap: no pulumi, kubernetes, ansible or rich at
module top anywhere on the `inv --list` path (a test enforces it).
"""

__version__ = "0.1.0"
