"""GitOps integrity guardrails shared by every layer.

* `git_state` - pure parsing of git output and the path -> layer mapping.
* `lock`      - one apply lock per layer, with the holder written beside it.
* `journal`   - the append-only apply journal (one JSON line per apply).
* `session`   - `applying(...)`: guard, lock, journal around one apply.
* `tasks`     - root tasks `history`, `pending`, `affected`, `unlock`.
"""
