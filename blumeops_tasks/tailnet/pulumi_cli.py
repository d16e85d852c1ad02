"""The pulumi CLI as this layer calls it: command lines, environment, exit-code meanings, project files.

Every command runs against one project directory and one stack, never the operator's "current"
stack: `pulumi <verb> ... --cwd <dir> --stack <stack> --non-interactive`. Secrets never appear on a
command line: the Tailscale credentials and the passphrase are already in the environment (from the
shell or `.env`), and `env_for` adds only non-secret settings (backend URL, interpreter).

Previews refresh first (`--refresh`): a device retagged in the admin console shows as a change.
An apply is bound to the preview the operator confirmed: the preview saves Pulumi's update plan
(`--save-plan=FILE`) and `pulumi up --plan=FILE` refuses anything that plan does not hold.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.runners import Result

from blumeops_tasks import shell

# Exit codes with distinct meanings arrived in this CLI version; before it, every error is 255.
EXIT_CODES_SINCE = (3, 226, 0)

EXIT_MEANINGS: dict[int, str] = {
    0: "success",
    1: "generic failure",
    2: "configuration or validation error (bad config, or --yes missing when non-interactive)",
    3: "authentication failed (backend login or cloud credentials)",
    4: "resource error: the provider or deployment failed (see the messages above)",
    5: "policy violation",
    6: "stack not found (create it with `inv tailnet.init`)",
    7: "changes pending with --expect-no-changes",
    8: "cancelled",
    9: "timed out",
    255: "internal error (CLIs older than 3.226 return 255 for every error)",
}


def exit_meaning(code: int) -> str:
    return EXIT_MEANINGS.get(code, "unknown exit code")


@dataclass(frozen=True)
class Target:
    """The project and stack every command runs against."""

    tool: str  # the CLI to run, normally "pulumi"
    project_dir: Path
    stack: str
    backend_url: str
    python: str  # interpreter for the program (the project's environment)

    def command(self, *words: str) -> str:
        """`pulumi WORDS --cwd DIR --stack STACK --non-interactive`, shell-quoted."""
        parts = [self.tool, *words, "--cwd", str(self.project_dir), "--stack", self.stack, "--non-interactive"]
        return shlex.join(parts)


def preview_command(target: Target, save_plan: Path | None = None) -> str:
    """`pulumi preview --json --refresh`: the state is refreshed first, so changes made outside Pulumi show."""
    saving = [f"--save-plan={save_plan}"] if save_plan is not None else []
    return target.command("preview", "--json", "--refresh", *saving)


def up_command(target: Target, plan: Path) -> str:
    """The operator confirmed the preview that saved `plan`; pulumi applies that plan and nothing else
    (refreshing as the preview did), without a second preview."""
    return target.command("up", "--yes", "--skip-preview", "--refresh", f"--plan={plan}")


def init_command(target: Target) -> str:
    return target.command("stack", "init", "--secrets-provider", "passphrase")


def stack_ls_command(target: Target) -> str:
    return shlex.join([target.tool, "stack", "ls", "--json", "--cwd", str(target.project_dir), "--non-interactive"])


def version_command(target: Target) -> str:
    return shlex.join([target.tool, "version"])


def whoami_command(target: Target) -> str:
    return shlex.join([target.tool, "whoami", "--non-interactive"])


def env_for(target: Target) -> dict[str, str]:
    """Non-secret environment for every pulumi run (secrets are inherited, never passed here).
    No backend configured anywhere: the one `pulumi login` chose, so no PULUMI_BACKEND_URL."""
    env = {"PULUMI_PYTHON_CMD": target.python, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    return {"PULUMI_BACKEND_URL": target.backend_url, **env} if target.backend_url else env


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


# --- project files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    name: str
    backend_url: str  # as written in Pulumi.yaml ("" when absent)


def _yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def read_project(project_dir: Path) -> Project:
    """Pulumi.yaml's name and backend (empty when the file or the key is absent: pulumi names the problem)."""
    path = project_dir / "Pulumi.yaml"
    data = _yaml(path) if path.is_file() else None
    data = data if isinstance(data, dict) else {}
    backend = data.get("backend") or {}
    return Project(str(data.get("name", "")), str(backend.get("url", "")) if isinstance(backend, dict) else "")


def stack_files(project_dir: Path) -> list[str]:
    """The stacks that have a config file (`Pulumi.<stack>.yaml`) beside the program, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def resolve_stack(configured: str, project_dir: Path) -> str:
    """The configured stack, else the only one with a config file beside the program, else ''."""
    if configured:
        return configured
    stacks = stack_files(project_dir)
    return stacks[0] if len(stacks) == 1 else ""


def stack_file(project_dir: Path, stack: str) -> dict[str, Any]:
    """Pulumi.<stack>.yaml as a mapping (empty when absent or of another shape)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    data = _yaml(path) if stack and path.is_file() else None
    return dict(data) if isinstance(data, dict) else {}


def stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """The `config:` mapping of Pulumi.<stack>.yaml (empty when the file has none)."""
    config = stack_file(project_dir, stack).get("config") or {}
    return dict(config) if isinstance(config, dict) else {}


# The provider reads each credential from its stack config key or from the environment variable.
CREDENTIAL_CONFIG = {
    "tailscale:apiKey": "TAILSCALE_API_KEY",
    "tailscale:oauthClientId": "TAILSCALE_OAUTH_CLIENT_ID",
    "tailscale:oauthClientSecret": "TAILSCALE_OAUTH_CLIENT_SECRET",
    "tailscale:tailnet": "TAILSCALE_TAILNET",
}


def credential_sources(environ: Mapping[str, str], config: Mapping[str, Any]) -> dict[str, str]:
    """The credential variables as the provider sees them: the environment, plus each one the stack
    config sets (a config value stands in as its key's name when secret, so nothing secret is copied)."""
    merged = {name: environ[name] for name in CREDENTIAL_CONFIG.values() if environ.get(name)}
    for key, name in CREDENTIAL_CONFIG.items():
        value = config.get(key)
        if value and name not in merged:
            merged[name] = value if isinstance(value, str) and name == "TAILSCALE_TAILNET" else f"({key})"
    return merged


def resolve_backend(configured: str, environ: Mapping[str, str], project: Project, project_dir: Path) -> str:
    """Setting > PULUMI_BACKEND_URL > Pulumi.yaml > '' (the backend `pulumi login` chose); a relative
    file:// path is made absolute."""
    url = configured or environ.get("PULUMI_BACKEND_URL", "") or project.backend_url
    path = file_backend_path(url, project_dir)
    return f"file://{path}" if path is not None else url


def file_backend_path(url: str, project_dir: Path) -> Path | None:
    """The directory of a file:// backend (relative paths from the project directory), else None."""
    if not url.startswith("file://"):
        return None
    raw = Path(url.removeprefix("file://")).expanduser()
    return raw if raw.is_absolute() else (project_dir / raw).resolve()


def stack_state_files(backend_dir: Path, project: str, stack: str) -> list[Path]:
    """Where a DIY backend keeps a stack's state (project-scoped layout, then the legacy one)."""
    stacks = backend_dir / ".pulumi" / "stacks"
    return [stacks / project / f"{stack}{ext}" for ext in (".json", ".json.gz")] + [
        stacks / f"{stack}{ext}" for ext in (".json", ".json.gz")
    ]


def credential_problem(environ: Mapping[str, str]) -> str:
    """'' when Tailscale credentials are usable, else what is wrong (names only, never values)."""
    has_key = bool(environ.get("TAILSCALE_API_KEY"))
    oauth = [name for name in ("TAILSCALE_OAUTH_CLIENT_ID", "TAILSCALE_OAUTH_CLIENT_SECRET") if environ.get(name)]
    problems: list[str] = []
    if has_key and oauth:
        problems.append(f"both TAILSCALE_API_KEY and {', '.join(oauth)} are set; the provider takes one kind")
    elif len(oauth) == 1:
        missing = ({"TAILSCALE_OAUTH_CLIENT_ID", "TAILSCALE_OAUTH_CLIENT_SECRET"} - set(oauth)).pop()
        problems.append(f"{oauth[0]} is set but {missing} is not")
    elif not has_key and not oauth:
        problems.append(
            "neither TAILSCALE_OAUTH_CLIENT_ID + TAILSCALE_OAUTH_CLIENT_SECRET nor TAILSCALE_API_KEY is set"
        )
    if not environ.get("TAILSCALE_TAILNET"):
        problems.append("TAILSCALE_TAILNET is not set")
    return "; ".join(problems)


def credential_kind(environ: Mapping[str, str]) -> str:
    return "API key" if environ.get("TAILSCALE_API_KEY") else "OAuth client"


def passphrase_problem(environ: Mapping[str, str]) -> str:
    """'' when the passphrase secrets provider can run non-interactively (an empty passphrase counts)."""
    if "PULUMI_CONFIG_PASSPHRASE" in environ:
        return ""
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path:
        if Path(path).expanduser().is_file():
            return ""
        return f"PULUMI_CONFIG_PASSPHRASE_FILE names {path}, which does not exist"
    return "neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE is set"


def default_python() -> str:
    return os.environ.get("PULUMI_PYTHON_CMD") or sys.executable


def capture(c: Context, command: str, env: Mapping[str, str] | None = None, timeout: float | None = None) -> Result:
    """Run through the Context with output captured, not shown, and never raising on exit codes."""
    return shell.run(c, command, env=env, hide=True, warn=True, timeout=timeout)
