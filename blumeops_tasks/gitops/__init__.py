"""GitOps integrity guardrails shared by every layer.

* `git_state` - pure parsing of git output and the path -> layer mapping.
* `lock`      - one apply lock per layer, shared by every clone, with the holder written beside it.
* `journal`   - the append-only apply journal (a started line and an end line per apply).
* `session`   - `applying(...)`: guard, lock, journal, signals and tool process groups around one apply.
* `snapshot`  - the detached worktree of the journaled commit an apply's tools read.
* `tasks`     - root tasks `history`, `pending`, `affected`, `unlock`.
"""
