"""The tailnet layer."""
