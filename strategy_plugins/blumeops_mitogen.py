"""Ansible's `free` strategy run through Mitogen, with three adjustments for this repo (see ansible.cfg).

Mitogen (PyPI `mitogen`, a dependency in pyproject.toml) keeps one Python interpreter per host for
the whole run and serves it ansible's module code once, instead of shipping, unpacking and starting
a new AnsiballZ payload for every task. An idempotent run of the indri playbook is dominated by
those per-task costs; docs/hosts.md has the measurements.

What this plugin adds to Mitogen's own `mitogen_free`:

1. The ssh ControlPath. Mitogen passes `ssh_args` through but, unlike Ansible's ssh connection,
   does not add `-o ControlPath=...` to `ControlPersist`, so every run paid a fresh SSH handshake and
   never reused the master that `inv preflight` (and the previous run) left open. The path is built
   exactly as the ssh connection builds it (`control_path` % `control_path_dir`), so both share it.
2. CPU pinning on small machines. Mitogen pins its multiplexer to CPU 0 and, with fewer than four
   CPUs, the controller and every worker process to the one remaining CPU, so hosts never run in
   parallel on a 2-CPU controller. Below four CPUs pinning is turned off and the kernel schedules.
3. The bootstrap preamble. Mitogen minifies and compresses its core source (~70 ms) for the first
   connection of every run, while that connection waits. The multiplexer process now builds it in a
   thread as soon as it starts, in parallel with the controller's first tasks (argument specs,
   asserts), which need no connection.

Without a usable Mitogen (not installed, or refusing this ansible-core) this is plain `free`, with a
warning that says so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.strategy.free import StrategyModule as FreeStrategy
from ansible.utils.display import Display
from ansible.utils.path import makedirs_safe, unfrackpath

DOCUMENTATION = """
    name: blumeops_mitogen
    short_description: the free strategy through Mitogen, reusing Ansible's ssh ControlPath
    description:
      - Mitogen's mitogen_free strategy with the ssh ControlPath Ansible's ssh connection would use,
        without CPU pinning on controllers with fewer than four CPUs, and with the bootstrap preamble
        built as the multiplexer starts.
      - Falls back to the builtin free strategy, with a warning, when mitogen is not installed or
        refuses this ansible-core.
"""

PINNING_MIN_CPUS = 4


def control_path_args(args: list[str]) -> list[str]:
    """`-o ControlPath=...` as Ansible's ssh connection adds it, or nothing when args need none."""
    if not any("ControlPersist" in a for a in args) or any("ControlPath" in a for a in args):
        return []
    template = C.config.get_config_value("control_path", plugin_type="connection", plugin_name="ssh")
    if not template:  # the ssh connection would hash host/port/user here; not reproduced
        return []
    directory = unfrackpath(C.config.get_config_value("control_path_dir", plugin_type="connection", plugin_name="ssh"))
    makedirs_safe(directory, 0o700)
    return ["-o", f"ControlPath={template % {'directory': directory}}"]


def _with_control_path(ssh_args: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
    def wrapped(spec: Any) -> list[str]:
        args = ssh_args(spec)
        return args + control_path_args(args)

    return wrapped


PREAMBLE_THREAD = "blumeops-mitogen-preamble"


def _warming_preamble(setup_services: Callable[[Any], None]) -> Callable[[Any], None]:
    """MuxProcess._setup_services, then the bootstrap preamble built in the background."""

    def wrapped(mux: Any) -> None:
        setup_services(mux)
        import mitogen.parent

        threading.Thread(target=mitogen.parent.get_core_source_partial, name=PREAMBLE_THREAD, daemon=True).start()

    return wrapped


def _wrap_once(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    """Replace owner.name with wrap(owner.name), unless an earlier load of this plugin already did."""
    current = getattr(owner, name)
    if hasattr(current, "__wrapped__"):
        return
    wrapper = wrap(current)
    wrapper.__wrapped__ = current
    setattr(owner, name, wrapper)


def _adapt_mitogen() -> type | str:
    """Mitogen's mitogen_free with the three adjustments, or a warning saying why it cannot be used."""
    try:
        import ansible_mitogen.affinity
        import ansible_mitogen.process
        import ansible_mitogen.transport_config as transport
        from ansible_mitogen.plugins.strategy.mitogen_free import StrategyModule as MitogenFree
    except ImportError:
        return "mitogen is not installed: running the plain free strategy (slower); pip install -e . installs it"
    except AnsibleError as exc:  # Mitogen refuses an ansible-core it does not support
        return (
            f"mitogen cannot run with this ansible-core ({str(exc).splitlines()[0]}): running the plain free "
            "strategy (slower); pip install -U mitogen may bring a release that supports it"
        )
    for spec in (transport.PlayContextSpec, transport.MitogenViaSpec):
        _wrap_once(spec, "ssh_args", _with_control_path)
    _wrap_once(ansible_mitogen.process.MuxProcess, "_setup_services", _warming_preamble)
    if (os.cpu_count() or 1) < PINNING_MIN_CPUS:
        ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
    return MitogenFree  # type: ignore[no-any-return]


_mitogen = _adapt_mitogen()
if isinstance(_mitogen, str):
    Display().warning(_mitogen)
    StrategyModule = FreeStrategy
else:
    StrategyModule = _mitogen
