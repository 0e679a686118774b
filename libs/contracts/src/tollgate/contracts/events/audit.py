"""The audit trail every service writes: one record per state-changing call.

One topic, `tollgate.audit.records.v1` (key `org_id`, null for platform-wide actions):
`AuditRecorded`. Billing, usage and the notifier write it through their outboxes in
the same transaction as the change; accounts consumes it into its audit log
(idempotent on the event id) and serves it at `/v1/audit`. A record names who acted,
on which org and object, what changed (field names and masked values) and the
request id. It never carries a secret: fields named like secrets are masked before
the record is written (`tollgate.kit.audit`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from tollgate.contracts.envelope import EventData, UtcDatetime


class AuditRecorded(EventData):
    """A state-changing call a service accepted.

    Sent by billing, usage and the notifier (outbox) for every state-changing request
    that succeeded. Kafka key: `org_id` (null for platform-wide actions).
    """

    event_type = "tollgate.audit.recorded.v1"
    key_field = "org_id"

    service: str = Field(
        pattern=r"^[a-z]+$", description="Service that accepted the call, e.g. `billing`."
    )
    org_id: UUID | None = Field(None, description="Organisation acted on; null: platform-wide.")
    actor_id: UUID | None = Field(
        None, description="User who acted; null when the platform acted (e.g. a job)."
    )
    action: str = Field(
        min_length=1,
        max_length=100,
        description="What was done, `<object>.<verb>`, e.g. `credits.top_up`.",
    )
    target_type: str = Field(
        min_length=1, max_length=50, description="Kind of object acted on, e.g. `webhook`."
    )
    target_id: str | None = Field(None, max_length=100, description="Id of the object.")
    diff: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Changed fields with their new values (or [before, after]); values of fields "
            "named like secrets are replaced by `***`."
        ),
    )
    ip: str | None = Field(None, max_length=64, description="Client address of the call.")
    request_id: str | None = Field(None, max_length=128, description="`X-Request-ID` of the call.")
    at: UtcDatetime = Field(description="When the change was accepted.")
