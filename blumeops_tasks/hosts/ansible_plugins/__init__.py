"""Ansible plugins shipped with blumeops; the hosts tasks hand their paths to Ansible (ANSIBLE_*_PLUGINS)."""
