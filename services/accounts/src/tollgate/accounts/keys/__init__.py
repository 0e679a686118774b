"""API keys of orgs: issue, change, rotate, revoke; every change goes to the keys topic."""
