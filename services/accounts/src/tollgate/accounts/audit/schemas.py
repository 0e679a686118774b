"""Audit log DTOs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEntryOut(BaseModel):
    """One audited change."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: uuid.UUID | None
    org_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str | None
    diff: dict[str, Any]
    ip: str | None
    request_id: str | None
    service: str = Field(
        "accounts", description="Service that accepted the change: accounts, billing, …"
    )
