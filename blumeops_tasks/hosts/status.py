"""`hosts.status`: which probes to run on a host, the one shell script that runs them, and its verdicts.

Probes come from each role's meta/blumeops.yml (`status:`), with values templated by Ansible's own
Templar against the role defaults and the host's inventory variables. The task runs the script
through fabric.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blumeops_tasks.hosts.inventory import role_defaults, role_meta


@dataclass(frozen=True)
class Probe:
    role: str
    name: str
    process: str = ""
    ports: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass
class ProbeResult:
    probe: Probe
    process_running: bool | None = None
    ports: dict[str, bool] = field(default_factory=dict)
    files: dict[str, bool] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.process_running is not False and all(self.ports.values()) and all(self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.probe.role,
            "name": self.probe.name,
            "healthy": self.healthy,
            "process": self.probe.process or None,
            "running": self.process_running,
            "ports": self.ports,
            "files": self.files,
        }


def _trusted(node: Any) -> Any:
    """Our own files' values as templates Ansible may render (ansible-core 2.19 renders only trusted ones)."""
    from ansible.template import trust_as_template

    if isinstance(node, str):
        return trust_as_template(node)
    if isinstance(node, list):
        return [_trusted(v) for v in node]
    if isinstance(node, dict):
        return {k: _trusted(v) for k, v in node.items()}
    return node


def templated(value: Any, variables: dict[str, Any]) -> Any:
    """`value` rendered by Ansible's Templar with `variables` (themselves templates, as in a play)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    return Templar(loader=DataLoader(), variables=_trusted(variables)).template(_trusted(value))


def probes(roles_dir: Path, roles: list[str], hostvars: dict[str, Any]) -> list[Probe]:
    """The probes of the given roles, templated with role defaults < host variables."""
    found: list[Probe] = []
    for role in roles:
        entries = role_meta(roles_dir, role).get("status") or []
        if not entries:
            continue
        for entry in templated(entries, {**role_defaults(roles_dir, role), **hostvars}):
            found.append(
                Probe(
                    role=role,
                    name=str(entry.get("name") or role),
                    process=str(entry.get("process") or ""),
                    ports=tuple(str(p) for p in entry.get("ports") or []),
                    files=tuple(str(f) for f in entry.get("files") or []),
                )
            )
    return found


def address(port_spec: str) -> tuple[str, int]:
    """'9100', ':9100', '0.0.0.0:9100', 'localhost:2019' -> where to connect on the host itself."""
    host, _, port = port_spec.rpartition(":")
    host = host.strip("[]")
    if host in {"", "0.0.0.0", "::", "*"}:
        host = "127.0.0.1"
    return host, int(port)


def script(probe_list: list[Probe], python: str = "python3") -> str:
    """One POSIX sh script printing one line per check: `KIND<TAB>KEY<TAB>up|down`."""
    lines = []
    connect = (
        "import socket,sys; s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET); "
        "s.settimeout(2); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))"
    )
    for index, probe in enumerate(probe_list):
        if probe.process:
            # -x: the regex must match the whole process name (15 characters on Linux), never a command line.
            name = shlex.quote(probe.process)
            lines.append(
                f"if pgrep -x {name} >/dev/null 2>&1; then r=up; else r=down; fi; printf 'process\\t{index}\\t%s\\n' $r"
            )
        for spec in probe.ports:
            host, port = address(spec)
            key = shlex.quote(f"{index}|{spec}")
            lines.append(
                f"if {shlex.quote(python)} -c {shlex.quote(connect)} {shlex.quote(host)} {port} >/dev/null 2>&1; "
                f"then r=up; else r=down; fi; printf 'port\\t%s\\t%s\\n' {key} $r"
            )
        for path in probe.files:
            key = shlex.quote(f"{index}|{path}")
            lines.append(
                f"if [ -e {shlex.quote(path)} ]; then r=up; else r=down; fi; printf 'file\\t%s\\t%s\\n' {key} $r"
            )
    return "\n".join(lines) + "\n"


def parse(probe_list: list[Probe], output: str) -> list[ProbeResult]:
    """Verdicts per probe from the script's output (a check with no line counts as down)."""
    results = [ProbeResult(p) for p in probe_list]
    seen: dict[tuple[str, str], bool] = {}
    for line in output.splitlines():
        parts = line.strip().split("\t")
        if len(parts) == 3:
            seen[(parts[0], parts[1])] = parts[2] == "up"
    for index, result in enumerate(results):
        probe = result.probe
        if probe.process:
            result.process_running = seen.get(("process", str(index)), False)
        for spec in probe.ports:
            result.ports[spec] = seen.get(("port", f"{index}|{spec}"), False)
        for path in probe.files:
            result.files[path] = seen.get(("file", f"{index}|{path}"), False)
    return results


def rows(results: list[ProbeResult]) -> list[list[str]]:
    table = []
    for r in results:
        running = "-" if r.process_running is None else ("running" if r.process_running else "not running")
        ports = ", ".join(f"{k} {'answers' if v else 'silent'}" for k, v in r.ports.items()) or "-"
        files = ", ".join(f"{k} {'present' if v else 'missing'}" for k, v in r.files.items()) or "-"
        table.append([r.probe.role, r.probe.name, running, ports, files, "ok" if r.healthy else "DOWN"])
    return table
