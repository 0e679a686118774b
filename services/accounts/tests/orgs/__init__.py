"""Tests of tollgate.accounts.orgs."""
