"""Alembic migrations of the notifier service."""
