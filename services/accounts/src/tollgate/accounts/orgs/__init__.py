"""Orgs (tenants) and their memberships and invitations."""
