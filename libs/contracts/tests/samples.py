"""Realistic payloads of every event type, built by plain functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from tollgate.contracts import (
    ApiStatus,
    ApiUpserted,
    BalanceMode,
    BalanceState,
    BalanceStatus,
    CreditsExhausted,
    CreditsLow,
    CreditsToppedUp,
    EmailVerificationRequested,
    EventData,
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
    RejectionReason,
    RequestCompleted,
    RequestRejected,
    RetiredSecret,
    RouteSpec,
    SmsReceived,
    SmsRoute,
    UsagePeriod,
    UsageThresholdCrossed,
    UserRegistered,
    uuid7,
)
from tollgate.contracts.events.accounts import (
    ApiChange,
    ApiChanged,
    ApiChangeKind,
    BreakingRule,
)
from tollgate.contracts.events.audit import AuditRecorded
from tollgate.contracts.events.billing import (
    AutoTopUpFailed,
    PastQuota,
    PlanPaymentFailed,
    PlanState,
    PlanStatus,
    PlanSuspended,
)
from tollgate.contracts.events.identity import OrgMembership, UserState
from tollgate.contracts.events.notifier import SmsCharged, SmsRefunded, SmsStatus, SmsStatusChanged
from tollgate.contracts.events.usage import ApiDeprecationAnnounced

NOW = datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=UTC)
ORG_ID = UUID("0195a3c1-7a2e-7c4d-9f10-3b5e8d2a6c01")
KEY_ID = UUID("0195a3c1-8b3f-7d5e-a021-4c6f9e3b7d12")
API_ID = UUID("0195a3c1-9c40-7e6f-b132-5d7a0f4c8e23")
ROUTE_ID = UUID("0195a3c1-ad51-7f70-8243-6e8b1a5d9f34")
USER_ID = UUID("0195a3c1-be62-7081-9354-7f9c2b6ea045")
SMS_ID = UUID("0195a3c1-cf73-7192-a465-8a0d3c7fb156")
KEY_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def request_completed(**overrides: object) -> RequestCompleted:
    fields: dict[str, object] = {
        "request_id": uuid7(),
        "time": NOW,
        "org_id": ORG_ID,
        "key_id": KEY_ID,
        "api_id": API_ID,
        "route_id": ROUTE_ID,
        "method": "GET",
        "path": "/pets/42",
        "status": 200,
        "latency_ms": 37,
        "upstream_latency_ms": 31,
        "request_bytes": 0,
        "response_bytes": 1843,
        "client_ip": "203.0.113.7",
        "cost": 3,
        "gateway_instance": "gateway-7c9f-2",
    }
    fields.update(overrides)
    return RequestCompleted.model_validate(fields)


def key_upserted(**overrides: object) -> KeyUpserted:
    fields: dict[str, object] = {
        "key_id": KEY_ID,
        "org_id": ORG_ID,
        "key_hash": KEY_HASH,
        "prefix": "tg_live_AbCd",
        "last4": "x9Qz",
        "name": "production backend",
        "environment": KeyEnvironment.LIVE,
        "enabled": True,
        "expires_at": NOW + timedelta(days=365),
        "scopes": ["pets:read", "pets:write"],
        "allowed_api_ids": [API_ID],
        "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"],
        "limits": Limits(per_second=20, per_day=100_000),
        "retired_secrets": [RetiredSecret(key_hash="a" * 64, expires_at=NOW + timedelta(hours=24))],
        "revoked": False,
        "version": 4,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return KeyUpserted.model_validate(fields)


def every_event() -> list[EventData]:
    """One realistic payload of every event type in the contract."""
    key_fields = {
        "org_id": ORG_ID,
        "key_id": KEY_ID,
        "name": "production backend",
        "prefix": "tg_live_AbCd",
        "last4": "x9Qz",
        "actor_id": USER_ID,
    }
    return [
        request_completed(),
        RequestRejected(
            request_id=uuid7(),
            time=NOW,
            org_id=ORG_ID,
            key_id=KEY_ID,
            api_id=API_ID,
            method="POST",
            path="/pets",
            status=429,
            reason=RejectionReason.RATE_LIMITED,
            latency_ms=1,
            client_ip="2001:db8::1",
            gateway_instance="gateway-7c9f-2",
        ),
        key_upserted(),
        ApiUpserted(
            api_id=API_ID,
            slug="petstore",
            name="Petstore",
            api_version="v2",
            upstream_url="https://petstore.internal:8443/api",
            status=ApiStatus.DEPRECATED,
            deprecated_at=NOW - timedelta(days=30),
            sunset_at=NOW + timedelta(days=60),
            timeout_ms=10_000,
            price=1,
            charge_failed_calls=False,
            limits=Limits(per_second=500),
            routes=[
                RouteSpec(
                    route_id=ROUTE_ID,
                    method="GET",
                    path_template="/pets/{petId}",
                    price=3,
                    limits=Limits(per_minute=600),
                    required_scopes=["pets:read"],
                    deprecated=True,
                    deprecated_at=NOW - timedelta(days=7),
                    sunset_at=NOW + timedelta(days=90),
                ),
                RouteSpec(route_id=uuid7(), method="*", path_template="/health"),
            ],
            upstream_headers_sealed="v1.gAAAAABn0x7kQ2sealedblob",
            version=12,
            updated_at=NOW,
        ),
        UserRegistered(user_id=USER_ID, email="ada@example.com", locale="en-GB", registered_at=NOW),
        PasswordResetRequested(
            user_id=USER_ID,
            email="ada@example.com",
            locale="en-GB",
            reset_token_sealed="v1.gAAAAABn0x7kresetsealed",
            expires_at=NOW + timedelta(minutes=30),
        ),
        EmailVerificationRequested(
            user_id=USER_ID,
            email="ada@example.com",
            locale="en-GB",
            verification_token_sealed="v1.gAAAAABn0x7kverifysealed",
            expires_at=NOW + timedelta(hours=48),
        ),
        MemberInvited(
            org_id=ORG_ID,
            org_name="Acme Pets",
            email="grace@example.com",
            role=OrgRole.DEVELOPER,
            invited_by=USER_ID,
            invitation_token_sealed="v1.gAAAAABn0x7kinvitesealed",
            expires_at=NOW + timedelta(days=7),
            locale="de-CH",
        ),
        KeyCreated.model_validate(key_fields),
        KeyRotated.model_validate({**key_fields, "grace_until": NOW + timedelta(hours=24)}),
        KeyRevoked.model_validate({**key_fields, "actor_id": None}),
        KeyExpiring.model_validate({**key_fields, "expires_at": NOW + timedelta(days=7)}),
        ApiChanged(
            api_id=API_ID,
            slug="petstore",
            name="Petstore",
            api_version="2.0.0",
            version=7,
            changes=[
                ApiChange(
                    kind=ApiChangeKind.REMOVED,
                    method="DELETE",
                    path="/pets/{petId}",
                    rule=BreakingRule.REMOVED_OPERATION,
                ),
                ApiChange(
                    kind=ApiChangeKind.CHANGED,
                    method="GET",
                    path="/pets",
                    rule=BreakingRule.NARROWED_TYPE,
                    location="query",
                    name="limit",
                    before="number",
                    after="integer",
                ),
                ApiChange(kind=ApiChangeKind.ADDED, method="POST", path="/pets"),
            ],
            breaking=2,
            changed_at=NOW,
        ),
        BalanceState(
            org_id=ORG_ID,
            balance=-250,
            status=BalanceStatus.EXHAUSTED,
            mode=BalanceMode.POSTPAID,
            low_threshold=1_000,
            version=90_211,
            as_of=NOW,
        ),
        CreditsLow(org_id=ORG_ID, balance=998, threshold=1_000, occurred_at=NOW),
        CreditsExhausted(org_id=ORG_ID, balance=0, mode=BalanceMode.PREPAID, occurred_at=NOW),
        CreditsToppedUp(
            org_id=ORG_ID, amount=50_000, balance=50_000, ledger_entry_id=uuid7(), occurred_at=NOW
        ),
        PlanState(
            org_id=ORG_ID,
            plan_id=uuid7(),
            plan_name="Starter",
            status=PlanStatus.ACTIVE,
            included_requests=10_000,
            past_quota=PastQuota.REJECT_402,
            rate_limits={"per_second": 20},
            period_start=NOW,
            period_end=NOW + timedelta(days=30),
            version=3,
            as_of=NOW,
        ),
        PlanPaymentFailed(
            org_id=ORG_ID,
            plan_id=UUID("01958b6e-0000-7000-8000-00000000b001"),
            plan_name="Pro",
            invoice_id="in_1QxYz2AbCdEf",
            grace_until=NOW + timedelta(days=3),
            occurred_at=NOW,
        ),
        PlanSuspended(
            org_id=ORG_ID,
            plan_id=UUID("01958b6e-0000-7000-8000-00000000b001"),
            plan_name="Pro",
            reason="invoice unpaid after the grace period",
            occurred_at=NOW,
        ),
        AutoTopUpFailed(
            org_id=ORG_ID,
            charge_id=UUID("01958b6e-0000-7000-8000-00000000c001"),
            amount=1_000,
            currency="usd",
            reason="card_declined",
            balance=900,
            occurred_at=NOW,
        ),
        UsageThresholdCrossed(
            org_id=ORG_ID,
            key_id=KEY_ID,
            period=UsagePeriod.DAY,
            period_start=date(2025, 3, 14),
            threshold_percent=80,
            limit=100_000,
            used=80_000,
            crossed_at=NOW,
        ),
        ApiDeprecationAnnounced(
            org_id=ORG_ID,
            api_id=API_ID,
            api_slug="weather",
            api_name="Weather",
            api_version="v1",
            deprecated_at=NOW,
            sunset_at=NOW + timedelta(days=90),
            requests=1_204,
            window_start=NOW - timedelta(days=30),
            window_end=NOW,
        ),
        SmsReceived(
            message_id=uuid7(),
            provider="twilio",
            provider_message_id="SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            org_id=None,
            from_number="+41791234567",
            to_number="+41445550100",
            body="STOP",
            routed_by=SmsRoute.ADMIN_INBOX,
            received_at=NOW,
        ),
        SmsStatusChanged(
            message_id=SMS_ID,
            org_id=ORG_ID,
            key_id=KEY_ID,
            client_reference="order-1187",
            from_number="+41445550100",
            to_number="+41791234567",
            segments=2,
            status=SmsStatus.UNDELIVERED,
            provider="twilio",
            provider_message_id="SM0a1b2c3d4e5f60718293a4b5c6d7e8f0",
            error_code="30005",
            error_message="Unknown destination handset",
            changed_at=NOW,
        ),
        SmsCharged(
            charge_id=uuid7(),
            message_id=SMS_ID,
            org_id=ORG_ID,
            key_id=KEY_ID,
            destination_prefix="+4179",
            segments=2,
            price_per_segment=7,
            amount=14,
            charged_at=NOW,
        ),
        SmsRefunded(
            refund_id=uuid7(),
            charge_id=uuid7(),
            message_id=SMS_ID,
            org_id=ORG_ID,
            amount=14,
            reason="30006",
            refunded_at=NOW,
        ),
        UserState(
            user_id=USER_ID,
            active=True,
            is_admin=False,
            memberships=[OrgMembership(org_id=ORG_ID, role=OrgRole.DEVELOPER)],
            sessions_revoked_at=NOW - timedelta(days=2),
            version=7,
            updated_at=NOW,
        ),
        AuditRecorded(
            service="billing",
            org_id=ORG_ID,
            actor_id=USER_ID,
            action="credits.top_up",
            target_type="org",
            target_id=str(ORG_ID),
            diff={"amount": 5_000, "reason": "March invoice"},
            ip="203.0.113.7",
            request_id="0195a3c1-cf73-7192-a465-8a0d3c7fb156",
            at=NOW,
        ),
    ]
