"""Org accounts: balance, mode, thresholds, status, and what is published about them."""
