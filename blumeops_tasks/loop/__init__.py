"""The loop around the applies: review before merge (`inv review`), rollback as one git commit
(`inv rollback`), and one page of context for a newcomer or an AI assistant (`inv context`).

`tasks.py` holds only the task definitions (it is on the `inv --list` path); the steps live in
`review.py`, `rollback.py` and `context.py`, imported inside the task bodies.
"""
