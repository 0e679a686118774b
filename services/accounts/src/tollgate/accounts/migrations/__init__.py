"""Alembic migrations of the accounts service."""
