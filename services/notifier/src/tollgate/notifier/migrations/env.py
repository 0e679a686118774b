"""Alembic environment of the notifier service (online mode, async engine)."""

from tollgate.kit.migrations import run_env
from tollgate.notifier.models import Base

run_env(Base.metadata)
