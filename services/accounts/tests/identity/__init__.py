"""Tests of tollgate.accounts.identity."""
