"""Callback plugins (loaded by Ansible by path, never imported by blumeops)."""
