"""The argocd layer."""
