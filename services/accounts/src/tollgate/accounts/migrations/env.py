"""Alembic environment of the accounts service (online mode, async engine)."""

from tollgate.accounts.models import Base
from tollgate.kit.migrations import run_env

run_env(Base.metadata)
