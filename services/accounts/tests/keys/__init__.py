"""Tests of tollgate.accounts.keys."""
