"""Alembic migrations of the usage service."""
