"""Alembic environment of the billing service (online mode, async engine)."""

from tollgate.billing.models import Base
from tollgate.kit.migrations import run_env

run_env(Base.metadata)
