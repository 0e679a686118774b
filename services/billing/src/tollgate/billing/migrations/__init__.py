"""Alembic migrations of the billing service."""
