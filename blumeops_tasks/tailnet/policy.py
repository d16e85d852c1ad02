"""The tailnet policy file, checked before Pulumi ever sees it. Pure functions over text and data.

* `parse_hujson` — HuJSON (JSON plus comments and trailing commas) read by `json5`, one parser.
  json5 also accepts what Tailscale does not (unquoted keys, single quotes): Tailscale is the
  authority on those and rejects them when the policy is applied.
* `undeclared_tags` — every `tag:` used anywhere must be declared in tagOwners.
* `lockout_problems` — the policy's own `tests` must keep the operator able to reach indri on
  the required ports, and (with Tailscale SSH) an ssh rule must still let the operator in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

TAG = re.compile(r"tag:[A-Za-z0-9][A-Za-z0-9_-]*")
# Sections whose strings name tags (tagOwners values too: a tag can own another tag).
TAG_SECTIONS = ("acls", "grants", "ssh", "tests", "sshTests", "tagOwners", "autoApprovers", "nodeAttrs", "hosts")
# Sources that cover every user of the tailnet, the operator included.
EVERYONE = ("*", "autogroup:member", "autogroup:admin")
SSH_ALLOWING = ("accept", "check")


class PolicyError(ValueError):
    """The policy file does not parse; the message is `file:line:column: what`."""


# json5's errors read `<string>:LINE MESSAGE at column COL`.
_JSON5_ERROR = re.compile(r"^<string>:(?P<line>\d+) (?P<what>.*?)(?: at column (?P<col>\d+))?$", re.S)


def parse_hujson(text: str, source: str = "policy.hujson") -> dict[str, Any]:
    """The policy as data (json5 reads HuJSON: JSON with comments and trailing commas), or
    PolicyError naming file, line and column."""
    import json5

    try:
        data = json5.loads(text)
    except ValueError as exc:
        match = _JSON5_ERROR.match(str(exc))
        if match is None:
            raise PolicyError(f"{source}: {exc}") from None
        where = f"{match['line']}:{match['col']}" if match["col"] else match["line"]
        what = re.sub(r'^Unexpected "(.+)"$', lambda m: f"unexpected {m[1]!r}", match["what"])
        raise PolicyError(f"{source}:{where}: {what}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{source}:1:1: the policy must be a JSON object, got {type(data).__name__}")
    return data


def pretty(policy: Mapping[str, Any]) -> str:
    """Canonical text of a policy, for diffs: two-space indent, keys in their own order."""
    return json.dumps(policy, indent=2, ensure_ascii=False) + "\n"


# --- tags ------------------------------------------------------------------------------------


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def tags_used(policy: Mapping[str, Any]) -> dict[str, str]:
    """Every tag the policy's rules mention -> the first section it appears in."""
    used: dict[str, str] = {}
    for section in TAG_SECTIONS:
        if section not in policy:
            continue
        node = policy[section]
        if section == "tagOwners" and isinstance(node, Mapping):
            node = list(node.values())  # the keys are the declarations themselves
        for text in _strings(node):
            for tag in TAG.findall(text):
                used.setdefault(tag, section)
    return used


def declared_tags(policy: Mapping[str, Any]) -> set[str]:
    owners = policy.get("tagOwners") or {}
    return set(owners) if isinstance(owners, Mapping) else set()


def undeclared_tags(policy: Mapping[str, Any], extra_uses: Mapping[str, str] | None = None) -> list[str]:
    """One line per tag used but missing from tagOwners, naming where it is used, sorted."""
    used = dict(tags_used(policy))
    for tag, where in (extra_uses or {}).items():
        used.setdefault(tag, where)
    declared = declared_tags(policy)
    return [f"{tag} (used in {where})" for tag, where in sorted(used.items()) if tag not in declared]


# --- lockout guard -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lockout:
    """What must stay reachable: the operator to indri on each named port."""

    operator: str
    indri: tuple[str, ...]  # destinations that mean indri: its tag first, then aliases/other tags
    ports: Mapping[int, str] = field(default_factory=lambda: {22: "SSH", 443: "HTTPS", 6443: "Kubernetes API"})
    tailscale_ssh: bool = True  # indri runs Tailscale SSH, so port 22 also needs an ssh rule


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _split_destination(dest: str) -> tuple[str, str]:
    host, _, port = dest.rpartition(":")
    return host, port


def operator_sources(policy: Mapping[str, Any], operator: str) -> set[str]:
    """Every source name that stands for the operator: the login, groups holding it, everyone."""
    names = {operator, *EVERYONE}
    groups = policy.get("groups") or {}
    if isinstance(groups, Mapping):
        names.update(name for name, members in groups.items() if operator in _as_list(members))
    return names


def _test_paths(policy: Mapping[str, Any], operator: str, kind: str) -> Iterator[tuple[str, int | None]]:
    """(host, port) pairs that the operator's own tests `accept` or `deny`."""
    for test in policy.get("tests") or []:
        if not isinstance(test, Mapping) or operator not in _as_list(test.get("src")):
            continue
        for dest in _as_list(test.get(kind)):
            host, port = _split_destination(dest)
            yield host, int(port) if port.isdigit() else None


def describe(lockout: Lockout, port: int) -> str:
    return f"{lockout.operator} → {lockout.indri[0]}:{port} ({lockout.ports[port]})"


def lockout_problems(policy: Mapping[str, Any], lockout: Lockout) -> list[str]:
    """Empty when the policy still proves the operator reaches indri; else one line per missing path."""
    problems: list[str] = []
    accepted = set(_test_paths(policy, lockout.operator, "accept"))
    denied = set(_test_paths(policy, lockout.operator, "deny"))
    for port in lockout.ports:
        path = describe(lockout, port)
        if any((host, port) in denied for host in lockout.indri):
            problems.append(f"policy tests deny {path}")
        elif not any((host, port) in accepted for host in lockout.indri):
            problems.append(f"policy tests no longer guarantee {path}")
    if lockout.tailscale_ssh and 22 in lockout.ports and not _ssh_rule_allows(policy, lockout):
        problems.append(f"no ssh rule (accept or check) lets {lockout.operator} in to {lockout.indri[0]}")
    return problems


def _ssh_rule_allows(policy: Mapping[str, Any], lockout: Lockout) -> bool:
    sources = operator_sources(policy, lockout.operator)
    for rule in policy.get("ssh") or []:
        if not isinstance(rule, Mapping) or rule.get("action") not in SSH_ALLOWING:
            continue
        if sources & set(_as_list(rule.get("src"))) and set(lockout.indri) & set(_as_list(rule.get("dst"))):
            return True
    return False


def required_tests_snippet(lockout: Lockout) -> str:
    """The `tests` entry that satisfies the guard, for the fix hint."""
    accept = ", ".join(f'"{lockout.indri[0]}:{port}"' for port in lockout.ports)
    return f'{{"src": "{lockout.operator}", "accept": [{accept}]}}'


def ports_from(values: Mapping[Any, Any]) -> dict[int, str]:
    """Config like {"22": "SSH"} (invoke/yaml keys are strings) as {22: "SSH"}."""
    return {int(port): str(name) for port, name in values.items()}
