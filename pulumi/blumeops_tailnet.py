"""Builders for the tailnet stack. `__main__.py` only reads the stack config and calls `build_stack`.

Each resource kind has its own importable builder so the mocks tests can call them one by one:

* `build_acl`          one `tailscale.Acl` named "policy": the whole policy file, sent as HuJSON.
* `build_device_tags`  one `tailscale.DeviceTags` per declared device, found by hostname with
                       `get_device` (the device must already be in the tailnet).
* `build_dns`          DNS through one approach only: `DnsNameservers`, `DnsSearchPaths`,
                       `DnsPreferences` (never `DnsConfiguration`, which conflicts with them).
* `build_auth_keys`    one `tailscale.TailnetKey` per declared key; the keys are secret outputs.

Tags must exist in the policy's tagOwners before a device or key can carry them, so tags and
keys depend on the ACL resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi_tailscale as tailscale

import pulumi

CONFIG_NAMESPACE = "blumeops-tailnet"
LOOKUP_WAIT = "60s"
ACL_RESOURCE = "policy"


class SpecError(ValueError):
    """A declared device, key or DNS setting has the wrong shape; the message names where."""


@dataclass(frozen=True)
class Device:
    hostname: str
    tags: tuple[str, ...]
    # Full MagicDNS name (host.tailnet.ts.net) to look up instead of the short hostname.
    name: str | None = None


@dataclass(frozen=True)
class AuthKey:
    name: str
    description: str = ""
    reusable: bool = False
    ephemeral: bool = False
    preauthorized: bool = False
    expiry: int | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsSettings:
    """None means "not managed by this stack"."""

    nameservers: tuple[str, ...] | None = None
    search_paths: tuple[str, ...] | None = None
    magic_dns: bool | None = None


@dataclass(frozen=True)
class StackConfig:
    policy_file: str = "policy.hujson"
    devices_file: str = "devices.yaml"
    overwrite_existing_policy: bool = False
    dns: DnsSettings = field(default_factory=DnsSettings)


@dataclass
class Built:
    acl: tailscale.Acl
    device_tags: dict[str, tailscale.DeviceTags]
    dns: dict[str, pulumi.CustomResource]
    auth_keys: dict[str, tailscale.TailnetKey]


# --- reading the declarations (plain data, no Pulumi) ---------------------------------------


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.startswith("tag:") for t in value):
        raise SpecError(f"{where}: tags must be a list of 'tag:name' strings, got {value!r}")
    return tuple(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"{where} must be a list of strings, got {value!r}")
    return tuple(value)


def parse_devices(data: Any, source: str = "devices.yaml") -> tuple[list[Device], list[AuthKey]]:
    """The devices file as data: `devices: {host: {tags: [...], name?: fqdn}}`, `auth_keys: {name: {...}}`."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: expected a mapping with 'devices' and 'auth_keys'")
    unknown = set(data) - {"devices", "auth_keys"}
    if unknown:
        raise SpecError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    for section in ("devices", "auth_keys"):
        if not isinstance(data.get(section) or {}, Mapping):
            kind = type(data[section]).__name__
            raise SpecError(f"{source}: '{section}' must be a mapping keyed by name, got {kind}")
    devices: list[Device] = []
    for host, entry in (data.get("devices") or {}).items():
        where = f"{source}: devices.{host}"
        if not isinstance(entry, Mapping) or "tags" not in entry:
            raise SpecError(f"{where} needs a 'tags' list")
        extra = set(entry) - {"tags", "name"}
        if extra:
            raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        devices.append(Device(str(host), _tags(entry["tags"], where), entry.get("name")))
    keys: list[AuthKey] = []
    allowed = {"description", "reusable", "ephemeral", "preauthorized", "expiry", "tags"}
    for name, declared in (data.get("auth_keys") or {}).items():
        where = f"{source}: auth_keys.{name}"
        entry = declared or {}
        if not isinstance(entry, Mapping) or set(entry) - allowed:
            raise SpecError(f"{where}: allowed keys are {', '.join(sorted(allowed))}")
        keys.append(
            AuthKey(
                name=str(name),
                description=str(entry.get("description", "")),
                reusable=bool(entry.get("reusable", False)),
                ephemeral=bool(entry.get("ephemeral", False)),
                preauthorized=bool(entry.get("preauthorized", False)),
                expiry=int(entry["expiry"]) if entry.get("expiry") is not None else None,
                tags=_tags(entry.get("tags", []), where),
            )
        )
    return devices, keys


def load_devices(path: Path) -> tuple[list[Device], list[AuthKey]]:
    import yaml

    return parse_devices(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)


def parse_dns(data: Any) -> DnsSettings:
    """`{magicDns: bool, nameservers: [...], searchPaths: [...]}`; a key left out is not managed."""
    if data is None:
        return DnsSettings()
    if not isinstance(data, Mapping):
        raise SpecError(f"config {CONFIG_NAMESPACE}:dns must be a mapping, got {data!r}")
    unknown = set(data) - {"magicDns", "nameservers", "searchPaths"}
    if unknown:
        raise SpecError(f"config {CONFIG_NAMESPACE}:dns: unknown key(s) {', '.join(sorted(unknown))}")
    magic = data.get("magicDns")
    if magic is not None and not isinstance(magic, bool):
        raise SpecError(f"config {CONFIG_NAMESPACE}:dns.magicDns must be true or false")
    return DnsSettings(
        nameservers=_strings(data["nameservers"], "dns.nameservers") if "nameservers" in data else None,
        search_paths=_strings(data["searchPaths"], "dns.searchPaths") if "searchPaths" in data else None,
        magic_dns=magic,
    )


def config_from_pulumi(cfg: pulumi.Config) -> StackConfig:
    """The stack config (`Pulumi.<stack>.yaml`, namespace blumeops-tailnet) as a StackConfig."""
    return StackConfig(
        policy_file=cfg.get("policyFile") or "policy.hujson",
        devices_file=cfg.get("devicesFile") or "devices.yaml",
        overwrite_existing_policy=bool(cfg.get_bool("overwriteExistingPolicy") or False),
        dns=parse_dns(cfg.get_object("dns")),
    )


# --- resources ------------------------------------------------------------------------------


def build_acl(policy_text: str, *, overwrite_existing: bool = False) -> tailscale.Acl:
    """The whole policy file. Tailscale runs its `tests` section before accepting it."""
    return tailscale.Acl(
        ACL_RESOURCE,
        acl=policy_text,
        overwrite_existing_content=overwrite_existing,
        reset_acl_on_destroy=False,
    )


def build_device_tags(
    devices: Sequence[Device], *, depends_on: Sequence[pulumi.Resource] = ()
) -> dict[str, tailscale.DeviceTags]:
    """DeviceTags per device; the device is looked up by hostname (or full name) to get its node id."""
    built: dict[str, tailscale.DeviceTags] = {}
    for device in devices:
        if device.name:
            found = tailscale.get_device_output(name=device.name, wait_for=LOOKUP_WAIT)
        else:
            found = tailscale.get_device_output(hostname=device.hostname, wait_for=LOOKUP_WAIT)
        built[device.hostname] = tailscale.DeviceTags(
            device.hostname,
            device_id=found.node_id,
            tags=sorted(device.tags),
            opts=pulumi.ResourceOptions(depends_on=list(depends_on)),
        )
    return built


def build_dns(dns: DnsSettings) -> dict[str, pulumi.CustomResource]:
    """Nameservers, search paths and MagicDNS as three separate resources (never DnsConfiguration)."""
    built: dict[str, pulumi.CustomResource] = {}
    if dns.nameservers is not None:
        built["nameservers"] = tailscale.DnsNameservers("nameservers", nameservers=list(dns.nameservers))
    if dns.search_paths is not None:
        built["search-paths"] = tailscale.DnsSearchPaths("search-paths", search_paths=list(dns.search_paths))
    if dns.magic_dns is not None:
        # MagicDNS needs the nameservers in place first when both are managed.
        after = [built["nameservers"]] if "nameservers" in built else []
        built["preferences"] = tailscale.DnsPreferences(
            "preferences", magic_dns=dns.magic_dns, opts=pulumi.ResourceOptions(depends_on=after)
        )
    return built


def build_auth_keys(
    keys: Sequence[AuthKey], *, depends_on: Sequence[pulumi.Resource] = ()
) -> dict[str, tailscale.TailnetKey]:
    built: dict[str, tailscale.TailnetKey] = {}
    for key in keys:
        built[key.name] = tailscale.TailnetKey(
            key.name,
            description=key.description or None,
            reusable=key.reusable,
            ephemeral=key.ephemeral,
            preauthorized=key.preauthorized,
            expiry=key.expiry,
            tags=list(key.tags) or None,
            opts=pulumi.ResourceOptions(depends_on=list(depends_on)),
        )
    return built


def build_stack(project_dir: Path, config: StackConfig) -> Built:
    """Everything the stack declares, with the stack outputs."""
    policy_text = (project_dir / config.policy_file).read_text(encoding="utf-8")
    devices, keys = load_devices(project_dir / config.devices_file)
    acl = build_acl(policy_text, overwrite_existing=config.overwrite_existing_policy)
    tags = build_device_tags(devices, depends_on=[acl])
    dns = build_dns(config.dns)
    auth_keys = build_auth_keys(keys, depends_on=[acl])
    pulumi.export("devices", {host: res.device_id for host, res in tags.items()})
    pulumi.export("dns", dns_summary(config.dns))
    if auth_keys:
        pulumi.export("authKeys", pulumi.Output.secret({name: k.key for name, k in auth_keys.items()}))
    return Built(acl, tags, dns, auth_keys)


def dns_summary(dns: DnsSettings) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if dns.nameservers is not None:
        summary["nameservers"] = list(dns.nameservers)
    if dns.search_paths is not None:
        summary["searchPaths"] = list(dns.search_paths)
    if dns.magic_dns is not None:
        summary["magicDns"] = dns.magic_dns
    return summary
