"""Offline checks of the roles: argument specs equal defaults, templates render for each platform.

Templates are rendered with Jinja2 plus Ansible's core filters and tests, over the role defaults
(themselves templates, resolved repeatedly until stable), optional extra variables, and the facts a
platform would report. Lookups return a placeholder: nothing is read from the operator's machine.
Rendered launchd property lists are parsed with plistlib. Heavy imports stay inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The facts the roles use, as each supported platform reports them (gather_subset in playbooks/).
PLATFORM_FACTS: dict[str, dict[str, str]] = {
    "debian": {
        "system": "Linux",
        "os_family": "Debian",
        "distribution": "Debian",
        "architecture": "x86_64",
        "service_mgr": "systemd",
        "pkg_mgr": "apt",
    },
    "macos": {
        "system": "Darwin",
        "os_family": "Darwin",
        "distribution": "MacOSX",
        "architecture": "arm64",
        "service_mgr": "launchd",
        "pkg_mgr": "homebrew",
    },
}
LOOKUP_PLACEHOLDER = "placeholder-from-lookup"
MANAGED = "Managed by Ansible from the blumeops repo; local edits are overwritten."


@dataclass(frozen=True)
class Rendered:
    role: str
    template: str
    platform: str
    text: str


def roles(roles_dir: Path) -> list[str]:
    return sorted(p.name for p in roles_dir.iterdir() if (p / "tasks" / "main.yml").is_file())


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def spec_mismatches(role_dir: Path) -> list[str]:
    """Differences between defaults/main.yml and meta/argument_specs.yml (empty when they agree)."""
    defaults = _load_yaml(role_dir / "defaults" / "main.yml") or {}
    spec_path = role_dir / "meta" / "argument_specs.yml"
    if not spec_path.is_file():
        return [f"{role_dir.name}: meta/argument_specs.yml is missing"]
    spec = _load_yaml(spec_path) or {}
    options = ((spec.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    problems = []
    for name in defaults:
        if name not in options:
            problems.append(f"{role_dir.name}: {name} is in defaults but not in argument_specs")
        elif options[name].get("default") != defaults[name]:
            problems.append(f"{role_dir.name}: {name} default differs between defaults and argument_specs")
    problems.extend(
        f"{role_dir.name}: {name} is in argument_specs but not in defaults" for name in options if name not in defaults
    )
    prefix = f"{role_dir.name}_"
    problems.extend(
        f"{role_dir.name}: default {name} lacks the role prefix {prefix}"
        for name in defaults
        if not name.startswith(prefix)
    )
    return problems


def _environment() -> Any:
    import jinja2
    from ansible.plugins.filter.core import FilterModule
    from ansible.plugins.test.core import TestModule

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, extensions=["jinja2.ext.do"]
    )
    # Jinja's own `default` understands its Undefined; Ansible's expects its own templar.
    env.filters.update({k: v for k, v in FilterModule().filters().items() if k not in {"default", "d"}})
    env.tests.update(TestModule().tests())
    env.globals["lookup"] = lambda *_args, **_kwargs: LOOKUP_PLACEHOLDER
    env.globals["omit"] = "__omit_place_holder__"
    return env


def resolve_vars(variables: dict[str, Any], passes: int = 6) -> dict[str, Any]:
    """Template string values (and strings inside lists/dicts) against each other until stable."""
    env = _environment()
    current = dict(variables)

    def walk(node: Any) -> Any:
        if isinstance(node, str) and ("{{" in node or "{%" in node):
            try:
                return env.from_string(node).render(current)
            except Exception:
                return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    for _ in range(passes):
        updated = {k: walk(v) for k, v in current.items()}
        if updated == current:
            break
        current = updated
    return current


def role_variables(role_dir: Path, platform: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults plus extra variables plus the platform's facts, resolved."""
    facts = PLATFORM_FACTS[platform]
    variables: dict[str, Any] = dict(_load_yaml(role_dir / "defaults" / "main.yml") or {})
    variables.update(extra or {})
    variables.setdefault("ansible_managed", MANAGED)
    variables["ansible_facts"] = dict(facts)
    variables.update({f"ansible_{k}": v for k, v in facts.items()})
    variables.setdefault("ansible_check_mode", False)
    return resolve_vars(variables)


def render_role(role_dir: Path, platform: str, extra: dict[str, Any] | None = None) -> list[Rendered]:
    """Every template of the role rendered for the platform; raises on a template error."""
    env = _environment()
    variables = role_variables(role_dir, platform, extra)
    rendered = []
    for template in sorted((role_dir / "templates").glob("*.j2")):
        text = env.from_string(template.read_text(encoding="utf-8")).render(variables)
        rendered.append(Rendered(role_dir.name, template.name, platform, text))
    return rendered


def template_problems(role_dir: Path, platform: str, extra: dict[str, Any] | None = None) -> list[str]:
    """Template errors, missing ansible_managed headers, and property lists that do not parse."""
    import plistlib

    try:
        rendered = render_role(role_dir, platform, extra)
    except Exception as exc:
        return [f"{role_dir.name} ({platform}): a template does not render: {type(exc).__name__}: {exc}"]
    problems = []
    for item in rendered:
        if MANAGED not in item.text and "ansible_managed" not in item.text:
            problems.append(f"{item.role}/{item.template}: no ansible_managed header")
        if item.template.endswith(".plist.j2"):
            try:
                plistlib.loads(item.text.encode("utf-8"))
            except Exception as exc:
                problems.append(f"{item.role}/{item.template} ({platform}): not a valid property list: {exc}")
    return problems
