"""The tailnet layer: Tailscale ACLs, device tags and DNS through Pulumi (pulumi/)."""

from __future__ import annotations

from invoke.collection import Collection

from blumeops_tasks.layer import Layer, deferred
from blumeops_tasks.tailnet import tasks

NAME = "tailnet"

DEFAULTS = {
    # The Pulumi project directory and the stack every command runs against (empty: the only
    # stack with a Pulumi.<stack>.yaml beside the program).
    "dir": "pulumi",
    "stack": "",
    # The policy file the program sends, relative to dir: the checks parse it and guard it.
    "policy": "policy.hujson",
    # Backend URL; empty: PULUMI_BACKEND_URL, else Pulumi.yaml's, else the one `pulumi login` chose.
    "backend_url": "",
    # The CLI to run, and the interpreter pulumi runs the program with (empty: the one running inv).
    "pulumi": "pulumi",
    "python": "",
    # Lockout guard (a guardrail; a house rule only while the operator is not named in the policy):
    # the policy's tests must keep this identity able to reach indri on these ports.
    "operator": "operator@example.com",
    "indri_tag": "tag:indri",
    "indri_host": "indri",
    "ports": {"22": "SSH", "443": "HTTPS", "6443": "Kubernetes API"},
    # indri runs Tailscale SSH: port 22 also needs an ssh rule (accept or check) for the operator.
    "tailscale_ssh": True,
    # Seconds the program may take under the SDK's mocks in `inv check`.
    "mock_timeout": 60.0,
}

LAYER = Layer(
    name=NAME,
    help="Tailscale ACLs, device tags and DNS through Pulumi",
    collection=Collection(NAME, *tasks.TASKS),
    path_settings=("dir",),
    offline_checks=deferred("blumeops_tasks.tailnet.checks:offline_checks"),
    preflight_checks=deferred("blumeops_tasks.tailnet.checks:preflight_checks"),
    plan=deferred("blumeops_tasks.tailnet.workflow:preview_plan"),
    apply_task="tailnet.up",
    targets=deferred("blumeops_tasks.tailnet.checks:declared_stacks"),
    defaults=DEFAULTS,
    secret_env=("TAILSCALE_API_KEY", "TAILSCALE_OAUTH_CLIENT_SECRET", "PULUMI_CONFIG_PASSPHRASE"),
    env=(
        "TAILSCALE_OAUTH_CLIENT_ID",
        "TAILSCALE_TAILNET",
        "TAILSCALE_BASE_URL",
        "PULUMI_BACKEND_URL",
        "PULUMI_CONFIG_PASSPHRASE_FILE",
        "PULUMI_ACCESS_TOKEN",
    ),
)
