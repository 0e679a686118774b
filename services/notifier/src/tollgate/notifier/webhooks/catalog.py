"""The event types an org can subscribe its webhook endpoints to, with examples.

A webhook body is `{"type", "timestamp", "data"}` (the Standard Webhooks payload
shape): `type` is the contract's event type, `data` the contract payload as JSON.
Examples are built from the contract models, so they cannot drift from them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tollgate.contracts.envelope import CloudEvent, EventData
from tollgate.contracts.events.accounts import (
    ApiChange,
    ApiChanged,
    ApiChangeKind,
    BreakingRule,
    KeyCreated,
    KeyExpiring,
    KeyRevoked,
    KeyRotated,
)
from tollgate.contracts.events.billing import (
    AutoTopUpFailed,
    BalanceMode,
    CreditsExhausted,
    CreditsLow,
    CreditsToppedUp,
    PlanPaymentFailed,
    PlanSuspended,
)
from tollgate.contracts.events.notifier import SmsReceived, SmsRoute, SmsStatus, SmsStatusChanged
from tollgate.contracts.events.usage import (
    ApiDeprecationAnnounced,
    RouteDeprecationAnnounced,
    UsagePeriod,
    UsageThresholdCrossed,
)

PING_TYPE = "tollgate.webhook.test"

_AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
_ORG = uuid.UUID("0195a3c1-7a2e-7c4d-9f10-3b5e8d2a6c01")
_KEY = uuid.UUID("0195a3c1-8b3f-7d5e-a021-4c6f9e3b7d12")
_USER = uuid.UUID("0195a3c1-be62-7081-9354-7f9c2b6ea045")
_PLAN = uuid.UUID("0195a3c1-d4a8-7b19-8e26-5a0c3f7b9e31")
_KEY_FIELDS: dict[str, Any] = {
    "org_id": _ORG,
    "key_id": _KEY,
    "name": "production backend",
    "prefix": "tg_live_AbCd",
    "last4": "x9Qz",
    "actor_id": _USER,
}


@dataclass(frozen=True)
class EventTypeInfo:
    """One subscribable event type."""

    type: str
    description: str
    description_zh: str
    """The description in Simplified Chinese (`zh-Hans`)."""
    example: EventData


EVENT_TYPES: tuple[EventTypeInfo, ...] = (
    EventTypeInfo(
        CreditsLow.event_type,
        "The org's credit balance fell to or below its low threshold.",
        "组织的额度余额降至或低于其低余额阈值。",
        CreditsLow(org_id=_ORG, balance=950, threshold=1000, occurred_at=_AT),
    ),
    EventTypeInfo(
        CreditsExhausted.event_type,
        "The org's credit balance reached zero; prepaid orgs are blocked.",
        "组织的额度余额已用尽;预付费组织的调用将被拒绝。",
        CreditsExhausted(org_id=_ORG, balance=0, mode=BalanceMode.PREPAID, occurred_at=_AT),
    ),
    EventTypeInfo(
        CreditsToppedUp.event_type,
        "Credits were added to the org's balance.",
        "组织的余额已充值。",
        CreditsToppedUp(
            org_id=_ORG,
            amount=10_000,
            balance=10_950,
            ledger_entry_id=uuid.UUID("0195a3c2-0000-7000-8000-000000000001"),
            occurred_at=_AT,
        ),
    ),
    EventTypeInfo(
        PlanPaymentFailed.event_type,
        "An invoice for the org's plan could not be paid; the org is suspended at "
        "`grace_until` unless it is paid by then.",
        "组织套餐的账单未能支付;若在 `grace_until` 之前仍未支付,组织将被暂停。",
        PlanPaymentFailed(
            org_id=_ORG,
            plan_id=_PLAN,
            plan_name="Pro",
            invoice_id="in_1QxYz2AbCdEfGhIj",
            grace_until=_AT + timedelta(days=3),
            occurred_at=_AT,
        ),
    ),
    EventTypeInfo(
        PlanSuspended.event_type,
        "The org's plan was suspended: every call is refused with 402 until it is paid.",
        "组织的套餐已暂停:在付款之前,所有调用都将以 402 拒绝。",
        PlanSuspended(
            org_id=_ORG,
            plan_id=_PLAN,
            plan_name="Pro",
            reason="invoice unpaid after the grace period",
            occurred_at=_AT,
        ),
    ),
    EventTypeInfo(
        AutoTopUpFailed.event_type,
        "An automatic top-up could not be charged (card declined, authentication required, "
        "monthly cap reached, provider unavailable); no credits were added.",
        "自动充值未能扣款(银行卡被拒、需要验证、已达每月上限、支付服务不可用);未增加额度。",
        AutoTopUpFailed(
            org_id=_ORG,
            charge_id=uuid.UUID("0195a3c2-3333-7000-8000-000000000004"),
            amount=450,
            currency="usd",
            reason="card_declined",
            balance=480,
            occurred_at=_AT,
        ),
    ),
    EventTypeInfo(
        UsageThresholdCrossed.event_type,
        "A key's usage crossed 80 % or 100 % of its daily or monthly limit.",
        "某个密钥的用量达到其每日或每月限额的 80% 或 100%。",
        UsageThresholdCrossed(
            org_id=_ORG,
            key_id=_KEY,
            period=UsagePeriod.DAY,
            period_start=date(2025, 3, 14),
            threshold_percent=80,
            limit=10_000,
            used=8_000,
            crossed_at=_AT,
        ),
    ),
    EventTypeInfo(
        ApiDeprecationAnnounced.event_type,
        "An API the org's live keys called in the last 30 days was deprecated (or its Sunset "
        "date moved): sent once per API and Sunset date.",
        "组织的正式密钥在过去 30 天内调用过的某个 API 已弃用(或其停用日期已变更):"
        "每个 API 和停用日期只发送一次。",
        ApiDeprecationAnnounced(
            org_id=_ORG,
            api_id=uuid.UUID("0195a3c2-4444-7000-8000-000000000005"),
            api_slug="weather",
            api_name="Weather",
            api_version="v1",
            deprecated_at=_AT,
            sunset_at=_AT + timedelta(days=90),
            requests=1_204,
            window_start=_AT - timedelta(days=30),
            window_end=_AT,
        ),
    ),
    EventTypeInfo(
        RouteDeprecationAnnounced.event_type,
        "A route the org's live keys called in the last 30 days was deprecated (or its "
        "Sunset date moved): sent once per route and Sunset date; from that date the route "
        "answers 410.",
        "组织的正式密钥在过去 30 天内调用过的某个路由已弃用(或其停用日期已变更):"
        "每个路由和停用日期只发送一次;自该日期起,该路由返回 410。",
        RouteDeprecationAnnounced(
            org_id=_ORG,
            api_id=uuid.UUID("0195a3c2-4444-7000-8000-000000000005"),
            api_slug="weather",
            api_name="Weather",
            api_version="v1",
            route_id=uuid.UUID("0195a3c2-4444-7000-8000-000000000007"),
            method="GET",
            path_template="/forecast/{city}",
            deprecated_at=_AT,
            sunset_at=_AT + timedelta(days=30),
            requests=311,
            window_start=_AT - timedelta(days=30),
            window_end=_AT,
        ),
    ),
    EventTypeInfo(
        KeyCreated.event_type,
        "An API key was created.",
        "已创建一个 API 密钥。",
        KeyCreated(**_KEY_FIELDS),
    ),
    EventTypeInfo(
        KeyRotated.event_type,
        "An API key got a new secret; the old one works until `grace_until`.",
        "某个 API 密钥已更换新密钥;旧密钥在 `grace_until` 之前仍然有效。",
        KeyRotated(**_KEY_FIELDS, grace_until=_AT + timedelta(days=1)),
    ),
    EventTypeInfo(
        KeyRevoked.event_type,
        "An API key was revoked.",
        "某个 API 密钥已被吊销。",
        KeyRevoked(**_KEY_FIELDS),
    ),
    EventTypeInfo(
        KeyExpiring.event_type,
        "An API key expires soon.",
        "某个 API 密钥即将过期。",
        KeyExpiring(**_KEY_FIELDS, expires_at=_AT + timedelta(days=7)),
    ),
    EventTypeInfo(
        ApiChanged.event_type,
        "A new OpenAPI document of an API changed its operations; breaking changes carry "
        "their `rule`. Every org whose endpoints take this type gets it.",
        "某个 API 的新 OpenAPI 文档改变了其操作;破坏性变更带有其 `rule`。"
        "所有端点订阅了此类型的组织都会收到。",
        ApiChanged(
            api_id=uuid.UUID("0195a3c2-5555-7000-8000-000000000006"),
            slug="petstore",
            name="Petstore",
            api_version="2.0.0",
            version=7,
            changes=[
                ApiChange(
                    kind=ApiChangeKind.CHANGED,
                    method="GET",
                    path="/pets",
                    rule=BreakingRule.NEW_REQUIRED_PARAMETER,
                    location="query",
                    name="owner",
                ),
                ApiChange(
                    kind=ApiChangeKind.REMOVED,
                    method="POST",
                    path="/pets",
                    rule=BreakingRule.REMOVED_OPERATION,
                ),
                ApiChange(kind=ApiChangeKind.ADDED, method="GET", path="/owners"),
            ],
            breaking=2,
            changed_at=_AT,
        ),
    ),
    EventTypeInfo(
        SmsReceived.event_type,
        "An inbound SMS was routed to the org.",
        "一条入站短信已路由到该组织。",
        SmsReceived(
            message_id=uuid.UUID("0195a3c2-1111-7000-8000-000000000002"),
            provider="twilio",
            provider_message_id="SM0123456789abcdef0123456789abcdef",
            org_id=_ORG,
            from_number="+14155550100",
            to_number="+14155550199",
            body="HELP my key stopped working",
            routed_by=SmsRoute.ASSIGNED_NUMBER,
            received_at=_AT,
        ),
    ),
    EventTypeInfo(
        SmsStatusChanged.event_type,
        "An SMS the org sent changed status (queued, sent, delivered, undelivered, failed).",
        "组织发送的一条短信状态已变更(queued、sent、delivered、undelivered、failed)。",
        SmsStatusChanged(
            message_id=uuid.UUID("0195a3c2-2222-7000-8000-000000000003"),
            org_id=_ORG,
            key_id=_KEY,
            client_reference="order-1187",
            from_number="+14155550199",
            to_number="+14155550100",
            segments=1,
            status=SmsStatus.DELIVERED,
            provider="twilio",
            provider_message_id="SM0123456789abcdef0123456789abcdee",
            changed_at=_AT,
        ),
    ),
)

SUBSCRIBABLE: frozenset[str] = frozenset(info.type for info in EVENT_TYPES)
PLATFORM_WIDE: frozenset[str] = frozenset({ApiChanged.event_type})
"""Subscribable types about the platform rather than one org: every org whose enabled
endpoints take the type gets its own message."""


def webhook_body(event_type: str, occurred_at: datetime, data: dict[str, Any]) -> str:
    """The exact JSON text sent (and signed) for an event."""
    return json.dumps(
        {"type": event_type, "timestamp": occurred_at.isoformat(), "data": data},
        separators=(",", ":"),
    )


def body_for_event(event: CloudEvent[Any]) -> str:
    """The webhook body of a contract event."""
    return webhook_body(event.type, event.time, event.data.model_dump(mode="json"))


def example_body(info: EventTypeInfo) -> dict[str, Any]:
    """The example payload shown by the event-type list."""
    parsed: dict[str, Any] = json.loads(
        webhook_body(info.type, _AT, info.example.model_dump(mode="json"))
    )
    return parsed


def ping_body(endpoint_id: uuid.UUID, at: datetime) -> str:
    """Body of a test ("ping") send."""
    return webhook_body(PING_TYPE, at, {"endpoint_id": str(endpoint_id), "message": "ping"})
