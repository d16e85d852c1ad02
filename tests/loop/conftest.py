"""The loop's tests use the gitops tests' real work tree with a bare remote (tests/gitops/helpers.py)."""

from tests.gitops.conftest import repo

__all__ = ["repo"]
