"""Tests of tollgate.accounts.apis."""
