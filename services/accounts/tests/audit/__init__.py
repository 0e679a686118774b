"""Tests of tollgate.accounts.audit."""
