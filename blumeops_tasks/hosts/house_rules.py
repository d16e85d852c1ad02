"""Our own conventions for roles, checked as house rules (warnings unless `blumeops.lint.strict`).

None of these is an Ansible error: a role without `meta/argument_specs.yml` or without an
`ansible_managed` header runs fine. Templates are never rendered here: Ansible renders them
(a run, or `--check`), `--syntax-check` and ansible-lint check the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blumeops_tasks import yaml_read


def roles(roles_dir: Path) -> list[str]:
    """Role directories (a role has tasks/main.yml or .yaml)."""
    if not roles_dir.is_dir():
        return []
    return sorted(
        p.name for p in roles_dir.iterdir() if any((p / "tasks" / f"main.{ext}").is_file() for ext in ("yml", "yaml"))
    )


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml_read.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # not ours to report: ansible-lint and the syntax check do


def spec_findings(role_dir: Path) -> list[str]:
    """meta/argument_specs.yml present and equal to defaults/main.yml; defaults carry the role prefix."""
    name = role_dir.name
    defaults_path = role_dir / "defaults" / "main.yml"
    defaults = _load_yaml(defaults_path) if defaults_path.is_file() else {}
    defaults = defaults if isinstance(defaults, dict) else {}
    findings = [
        f"{name}: default {key} lacks the role prefix {name}_"
        for key in defaults
        if not str(key).startswith(f"{name}_")
    ]
    spec_path = role_dir / "meta" / "argument_specs.yml"
    if not spec_path.is_file():
        return [f"{name}: no meta/argument_specs.yml", *findings]
    spec = _load_yaml(spec_path)
    spec = spec if isinstance(spec, dict) else {}
    options = ((spec.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    for key in defaults:
        if key not in options:
            findings.append(f"{name}: {key} is in defaults but not in argument_specs")
        elif (options[key] or {}).get("default") != defaults[key]:
            findings.append(f"{name}: {key} default differs between defaults and argument_specs")
    findings.extend(f"{name}: {key} is in argument_specs but not in defaults" for key in options if key not in defaults)
    return findings


def header_findings(role_dir: Path) -> list[str]:
    """Templates that do not mention `ansible_managed` (read as text, never rendered)."""
    templates = sorted((role_dir / "templates").rglob("*.j2")) if (role_dir / "templates").is_dir() else []
    return [
        f"{role_dir.name}/{t.relative_to(role_dir / 'templates')}: no ansible_managed header"
        for t in templates
        if "ansible_managed" not in t.read_text(encoding="utf-8", errors="replace")
    ]
