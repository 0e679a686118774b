"""Alembic environment of the usage service (online mode, async engine)."""

from tollgate.kit.migrations import run_env
from tollgate.usage.models import Base

run_env(Base.metadata)
