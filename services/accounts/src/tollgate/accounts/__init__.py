"""Tollgate accounts service: control plane: users, orgs, roles, API keys and the API registry."""
