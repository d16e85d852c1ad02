"""Aggregate callback: per-task, per-host results and the recap, as one JSON file.

Shipped inside the blumeops_tasks package: the hosts tasks prepend this directory to
ANSIBLE_CALLBACK_PLUGINS and add `blumeops_results` to ANSIBLE_CALLBACKS_ENABLED (keeping what
ansible.cfg configures), so a repo's ansible.cfg never names it. It writes only when the environment
variable BLUMEOPS_ANSIBLE_RESULTS names a file, so other runs are unaffected. The human
output (the stdout callback) stays as it is. The `hosts` tasks read the file with
`blumeops_tasks.hosts.callback_parse`.

Document (version 1):
  {"version": 1, "check_mode": bool, "playbooks": [...], "plays": [...],
   "tasks": [{"play", "task", "role", "action", "host", "status", "changed", "handler",
              "path", "diff", "msg", "ignore_errors", "secret", "not_previewable"}],
   "stats": {"HOST": {"ok", "failures", "unreachable", "changed", "skipped", "rescued", "ignored"}}}
status is one of ok, changed, failed, skipped, unreachable. Results of no_log tasks carry no diff
and no message.

secret: the task changed something whose content Ansible hides: `no_log` (the result is censored)
or `diff: false`. Its diff is never recorded; its path comes from the task's own (templated)
arguments, since a censored result has none.
Vault values never reach the document: the tasks name the project's files holding vault data in
BLUMEOPS_VAULT_FILES (paths only); the plugin reads them with the playbook's own loader (its vault
secrets) and a result whose diff holds a plaintext (or its base64) is recorded `secret` with no
diff, and a message holding one is masked.
not_previewable: in check mode, the task was skipped because check mode cannot predict it (a
command/shell without creates/removes, an action or module without check-mode support), not by a
condition: it will run when the playbook is applied. Tasks with `check_mode: false` really ran in
check mode and are recorded as what they did.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: blumeops_results
    type: aggregate
    short_description: write per-task results and the recap as JSON for the blumeops tasks
    description:
      - Records, per task and host, whether it changed, failed, was skipped or unreachable,
        with the diff when there is one, plus the per-host recap.
      - Writes to the file named by the environment variable BLUMEOPS_ANSIBLE_RESULTS;
        does nothing when it is unset.
    requirements:
      - enabled through ANSIBLE_CALLBACKS_ENABLED by the blumeops hosts tasks
"""

RESULTS_ENV = "BLUMEOPS_ANSIBLE_RESULTS"
VAULT_FILES_ENV = "BLUMEOPS_VAULT_FILES"
_MASK = "***"
_MIN_SECRET = 4
_MAX_MSG = 2000


class CallbackModule(CallbackBase):  # type: ignore[misc]  # ansible-core ships no type hints
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "blumeops_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = os.environ.get(RESULTS_ENV, "")
        self._doc: dict[str, Any] = {
            "version": 1,
            "check_mode": False,
            "playbooks": [],
            "plays": [],
            "tasks": [],
            "stats": {},
            "complete": False,
        }
        self._play = ""
        self._vault_forms: list[str] = []

    # -- bookkeeping -------------------------------------------------------------------------
    def _write(self) -> None:
        if not self._path:
            return
        target = Path(self._path).absolute()
        fd, tmp = tempfile.mkstemp(prefix=".results-", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._doc, handle, default=str)
        Path(tmp).replace(target)

    def _diff_text(self, result: dict[str, Any]) -> str:
        diffs: list[Any] = []
        if result.get("diff"):
            diffs.append(result["diff"])
        for item in result.get("results") or []:
            if isinstance(item, dict) and item.get("diff") and item.get("changed"):
                diffs.append(item["diff"])
        text = ""
        for diff in diffs:
            try:
                text += self._get_diff(diff) or ""
            except Exception:  # a diff we cannot render must not break the run
                continue
        return text

    @staticmethod
    def _path_of(result: dict[str, Any]) -> str:
        """The file a task manages: its result's dest/path, else the module arguments' (check mode)."""
        candidates = [result]
        candidates += [item for item in result.get("results") or [] if isinstance(item, dict) and item.get("changed")]
        for data in candidates:
            invocation = data.get("invocation") or {}
            args = invocation.get("module_args") or {}
            for source in (data, args):
                for key in ("dest", "path"):
                    value = source.get(key)
                    if isinstance(value, str) and value:
                        return value
        return ""

    @staticmethod
    def _arg_path(task: Any) -> str:
        """The file a task manages, from its own templated arguments (a censored result has none)."""
        args = getattr(task, "args", None) or {}
        for key in ("dest", "path"):
            value = args.get(key) if isinstance(args, dict) else None
            if isinstance(value, str) and value and "{{" not in value:
                return value
        return ""

    @staticmethod
    def _skipped_by_check_mode(task: Any, data: dict[str, Any]) -> bool:
        """Skipped because check mode cannot predict it (so it will run on apply), not by a condition.

        A condition leaves `false_condition`/`skip_reason`; a task that check mode cannot preview is
        skipped without either (per loop item: any item so skipped), and only when the task itself
        runs in check mode.
        """
        if not getattr(task, "check_mode", False):
            return False
        if data.get("censored") and getattr(task, "when", None):
            # no_log censors `false_condition`/`skip_reason` away, so the result cannot tell; a task
            # with conditions (its own, or its role's and blocks', which `when` extends) that was
            # skipped is taken as skipped by them: a role switched off must not preview as work.
            return False
        items = [item for item in data.get("results") or [] if isinstance(item, dict)]
        if not items:  # the skip itself (Ansible drops the `skipped` key from a task's own result)
            return "false_condition" not in data and "skip_reason" not in data
        return any(
            item.get("skipped") and "false_condition" not in item and "skip_reason" not in item for item in items
        )

    # -- vault values ------------------------------------------------------------------------
    def _read_vault_values(self, loader: Any) -> None:
        """The plaintexts of the files named in BLUMEOPS_VAULT_FILES, and their base64 forms."""
        import base64
        import runpy

        walker = Path(__file__).resolve().parent.parent / "vault_walk.py"  # shared with the tasks' decrypt
        paths = filter(None, os.environ.get(VAULT_FILES_ENV, "").split(os.pathsep))
        # Not strict: the tasks decrypted these before the run; ansible reports its own errors.
        found: set[str] = runpy.run_path(str(walker))["plaintexts"](loader, paths, strict=False)
        forms = {value for value in found if len(value) >= _MIN_SECRET}
        forms |= {base64.b64encode(value.encode()).decode() for value in forms}
        self._vault_forms = sorted(forms, key=len, reverse=True)

    def _holds_vault_value(self, text: str) -> bool:
        return any(form in text for form in self._vault_forms)

    def _mask_vault_values(self, text: str) -> str:
        for form in self._vault_forms:
            text = text.replace(form, _MASK)
        return text

    def _record(self, result: Any, status: str, ignore_errors: bool = False) -> None:
        task = result._task
        data: dict[str, Any] = dict(result._result)
        censored = bool(data.get("censored")) or bool(getattr(task, "no_log", False))
        role = getattr(task, "_role", None)
        changed = bool(data.get("changed")) and status in {"ok", "changed"}
        if status == "ok" and changed:
            status = "changed"
        secret = status == "changed" and (censored or getattr(task, "diff", None) is False)
        not_previewable = status == "skipped" and self._doc["check_mode"] and self._skipped_by_check_mode(task, data)
        msg = "" if censored else str(data.get("msg") or data.get("stderr") or data.get("reason") or "")
        path = self._arg_path(task) if censored else self._path_of(data)
        diff = "" if secret or status != "changed" else self._diff_text(data)
        if diff and self._holds_vault_value(diff):
            secret, diff = True, ""
        self._doc["tasks"].append(
            {
                "play": self._play,
                "task": task.get_name().strip(),
                "role": role.get_name() if role is not None else "",
                "action": str(task.action),
                "host": result._host.get_name(),
                "status": status,
                "changed": changed,
                "handler": isinstance(task, Handler),
                "path": self._mask_vault_values(path),
                "diff": diff,
                "msg": self._mask_vault_values(msg)[:_MAX_MSG],
                "ignore_errors": ignore_errors,
                "secret": secret,
                "not_previewable": not_previewable,
            }
        )
        self._write()

    # -- events ----------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._doc["playbooks"].append(str(getattr(playbook, "_file_name", "")))
        loader = getattr(playbook, "_loader", None)
        if loader is not None and not self._vault_forms:
            self._read_vault_values(loader)
        try:
            from ansible import context

            self._doc["check_mode"] = bool(context.CLIARGS.get("check", False))
        except Exception:
            pass
        self._write()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name().strip()
        self._doc["plays"].append(self._play)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "failed", ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._doc["stats"] = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._doc["complete"] = True
        self._write()
