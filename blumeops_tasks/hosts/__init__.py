"""The hosts layer."""
