"""Tollgate's public event contract: the CloudEvents envelope, every event model, the
Kafka topics they travel on, and UUIDv7 ids.

Services and downstream subscribers share only this package (and `tollgate.kit`);
it depends on pydantic alone. Event types end in `.v1`: optional fields may be added
to a `.v1` model, anything breaking becomes a new `.v2` type. Secrets never appear in
an event: keys travel as hashes, tokens and upstream credentials only sealed.
"""

from tollgate.contracts.decoding import UnknownEventType, decode, decode_as
from tollgate.contracts.envelope import (
    CONTENT_TYPE,
    CloudEvent,
    ContractModel,
    EventData,
    UtcDatetime,
    encode,
    envelope_model,
    new_event,
)
from tollgate.contracts.events.accounts import (
    ApiStatus,
    ApiUpserted,
    EmailVerificationRequested,
    KeyCreated,
    KeyEnvironment,
    KeyExpiring,
    KeyRevoked,
    KeyRotated,
    KeyUpserted,
    Limits,
    MemberInvited,
    OrgRole,
    PasswordResetRequested,
    RetiredSecret,
    RouteSpec,
    UserRegistered,
)
from tollgate.contracts.events.billing import (
    BalanceMode,
    BalanceState,
    BalanceStatus,
    CreditsExhausted,
    CreditsLow,
    CreditsToppedUp,
)
from tollgate.contracts.events.gateway import RejectionReason, RequestCompleted, RequestRejected
from tollgate.contracts.events.notifier import SmsReceived, SmsRoute
from tollgate.contracts.events.usage import UsagePeriod, UsageThresholdCrossed
from tollgate.contracts.ids import uuid7
from tollgate.contracts.topics import (
    ACCOUNTS_APIS,
    ACCOUNTS_EVENTS,
    ACCOUNTS_KEYS,
    ALL_TOPICS,
    BILLING_BALANCES,
    BILLING_EVENTS,
    EVENT_TYPES,
    GATEWAY_REQUESTS,
    NOTIFIER_SMS,
    USAGE_EVENTS,
    Topic,
    topic_for,
)

__all__ = [
    "ACCOUNTS_APIS",
    "ACCOUNTS_EVENTS",
    "ACCOUNTS_KEYS",
    "ALL_TOPICS",
    "BILLING_BALANCES",
    "BILLING_EVENTS",
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "GATEWAY_REQUESTS",
    "NOTIFIER_SMS",
    "USAGE_EVENTS",
    "ApiStatus",
    "ApiUpserted",
    "BalanceMode",
    "BalanceState",
    "BalanceStatus",
    "CloudEvent",
    "ContractModel",
    "CreditsExhausted",
    "CreditsLow",
    "CreditsToppedUp",
    "EmailVerificationRequested",
    "EventData",
    "KeyCreated",
    "KeyEnvironment",
    "KeyExpiring",
    "KeyRevoked",
    "KeyRotated",
    "KeyUpserted",
    "Limits",
    "MemberInvited",
    "OrgRole",
    "PasswordResetRequested",
    "RejectionReason",
    "RequestCompleted",
    "RequestRejected",
    "RetiredSecret",
    "RouteSpec",
    "SmsReceived",
    "SmsRoute",
    "Topic",
    "UnknownEventType",
    "UsagePeriod",
    "UsageThresholdCrossed",
    "UserRegistered",
    "UtcDatetime",
    "decode",
    "decode_as",
    "encode",
    "envelope_model",
    "new_event",
    "topic_for",
    "uuid7",
]
