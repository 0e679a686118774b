"""The Kafka topics of the public contract, and the registry of every event type.

A topic's name, partition count, cleanup policy, key and event types are part of the
interface: services and downstream subscribers rely on them. Names carry the physical
prefix only at runtime (`tollgate.kit.kafka.topic_name`). Every event type belongs to
exactly one topic; `EVENT_TYPES` (built from the topics) is what `decode` dispatches on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tollgate.contracts.envelope import EventData
from tollgate.contracts.events.accounts import (
    ApiChanged,
    ApiUpserted,
    EmailVerificationRequested,
    KeyCreated,
    KeyExpiring,
    KeyRevoked,
    KeyRotated,
    KeyUpserted,
    MemberInvited,
    OrgCreated,
    PasswordResetRequested,
    UserRegistered,
)
from tollgate.contracts.events.audit import AuditRecorded
from tollgate.contracts.events.billing import (
    AutoTopUpFailed,
    BalanceState,
    CreditsExhausted,
    CreditsLow,
    CreditsToppedUp,
    PlanPaymentFailed,
    PlanState,
    PlanSuspended,
)
from tollgate.contracts.events.gateway import RequestCompleted, RequestRejected
from tollgate.contracts.events.identity import UserState
from tollgate.contracts.events.notifier import (
    SmsCharged,
    SmsReceived,
    SmsRefunded,
    SmsStatusChanged,
)
from tollgate.contracts.events.usage import (
    ApiDeprecationAnnounced,
    RouteDeprecationAnnounced,
    UsageThresholdCrossed,
)

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Topic:
    """A Kafka topic of the contract: its configuration, key and the events it carries."""

    name: str
    partitions: int
    cleanup: Literal["delete", "compact"]
    retention_ms: int | None
    key: str
    event_types: tuple[type[EventData], ...]
    description: str


GATEWAY_REQUESTS = Topic(
    name="tollgate.gateway.requests.v1",
    partitions=12,
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    key="org_id (null when a rejected request has no known org)",
    event_types=(RequestCompleted, RequestRejected),
    description="One event per request through the gateway: completed or rejected.",
)
ACCOUNTS_KEYS = Topic(
    name="tollgate.accounts.keys.v1",
    partitions=6,
    cleanup="compact",
    retention_ms=None,
    key="key_id",
    event_types=(KeyUpserted,),
    description="Current state of every API key (hash only); a tombstone deletes a key.",
)
ACCOUNTS_APIS = Topic(
    name="tollgate.accounts.apis.v1",
    partitions=3,
    cleanup="compact",
    retention_ms=None,
    key="api_id",
    event_types=(ApiUpserted,),
    description="Current state of every API in the registry; a tombstone deletes an API.",
)
ACCOUNTS_EVENTS = Topic(
    name="tollgate.accounts.events.v1",
    partitions=6,
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    key="org_id for org and key events, user_id for user events, api_id for API changes",
    event_types=(
        UserRegistered,
        PasswordResetRequested,
        EmailVerificationRequested,
        OrgCreated,
        MemberInvited,
        KeyCreated,
        KeyRotated,
        KeyRevoked,
        KeyExpiring,
        ApiChanged,
    ),
    description="Account happenings that trigger emails and webhooks.",
)
BILLING_BALANCES = Topic(
    name="tollgate.billing.balances.v1",
    partitions=6,
    cleanup="compact",
    retention_ms=None,
    key="org_id",
    event_types=(BalanceState,),
    description="Current balance and spending status (ok/low/exhausted) of every org.",
)
BILLING_PLANS = Topic(
    name="tollgate.billing.plans.v1",
    partitions=6,
    cleanup="compact",
    retention_ms=None,
    key="org_id",
    event_types=(PlanState,),
    description="Current plan of every org: quota, past-quota behaviour, limits, suspension.",
)
BILLING_EVENTS = Topic(
    name="tollgate.billing.events.v1",
    partitions=6,
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    key="org_id",
    event_types=(
        CreditsLow,
        CreditsExhausted,
        CreditsToppedUp,
        PlanPaymentFailed,
        PlanSuspended,
        AutoTopUpFailed,
    ),
    description="Notable balance changes (credits low, exhausted, topped up) and "
    "subscription trouble (plan payment failed, plan suspended).",
)
USAGE_EVENTS = Topic(
    name="tollgate.usage.events.v1",
    partitions=6,
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    key="org_id",
    event_types=(UsageThresholdCrossed, ApiDeprecationAnnounced, RouteDeprecationAnnounced),
    description="Quota thresholds crossed by keys (e.g. 80 % and 100 % of a daily limit) "
    "and deprecations of APIs and routes announced to the orgs that called them.",
)
NOTIFIER_SMS = Topic(
    name="tollgate.notifier.sms.v1",
    partitions=6,
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    key="org_id (null for the admin inbox)",
    event_types=(SmsReceived, SmsStatusChanged, SmsCharged, SmsRefunded),
    description="Inbound SMS routed to an org or the admin inbox; outbound SMS charges, "
    "refunds and status changes.",
)
ACCOUNTS_USERS = Topic(
    name="tollgate.accounts.users.v1",
    partitions=6,
    cleanup="compact",
    retention_ms=None,
    key="user_id",
    event_types=(UserState,),
    description=(
        "Current authorisation state of every user (active, admin, memberships and roles), "
        "replayed by every service to authorise requests."
    ),
)
AUDIT_RECORDS = Topic(
    name="tollgate.audit.records.v1",
    partitions=6,
    cleanup="delete",
    retention_ms=7 * _DAY_MS,
    key="org_id (null for platform-wide actions)",
    event_types=(AuditRecorded,),
    description="Audit records of every service's state-changing calls, stored by accounts.",
)

ALL_TOPICS: tuple[Topic, ...] = (
    GATEWAY_REQUESTS,
    ACCOUNTS_KEYS,
    ACCOUNTS_APIS,
    ACCOUNTS_EVENTS,
    BILLING_BALANCES,
    BILLING_PLANS,
    BILLING_EVENTS,
    USAGE_EVENTS,
    NOTIFIER_SMS,
    ACCOUNTS_USERS,
    AUDIT_RECORDS,
)

EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model for topic in ALL_TOPICS for model in topic.event_types
}
"""Every event model of the contract by its CloudEvents `type`."""

_TOPIC_OF: dict[type[EventData], Topic] = {
    model: topic for topic in ALL_TOPICS for model in topic.event_types
}


def topic_for(event_type: type[EventData]) -> Topic:
    """The topic an event model is published on; KeyError for an unregistered model."""
    try:
        return _TOPIC_OF[event_type]
    except KeyError:
        raise KeyError(f"{event_type.__name__} is not on any contract topic") from None
