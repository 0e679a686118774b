"""Inbound SMS rules: store once per provider message, then route.

Routing order: the destination number's assigned org; else the org with an open
conversation with the sender (it sent them an SMS within `sms_conversation_hours`),
else the org that last received a message from the sender (conversation history); else the first
matching keyword rule (first word, case-insensitive, or a regex searched in the
body by RE2, in linear time whatever the pattern; lower priority value first); else
the admin inbox. The matching rule is recorded on the message (`routed_by`,
`rule_id`). A routed message is published as `SmsReceived` through the outbox and
sent to the org's webhook endpoints, in the routing transaction. Never commits.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.events.notifier import SmsReceived, SmsRoute
from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import AuditChange
from tollgate.kit.outbox import emit
from tollgate.kit.problems import NotFound, Unprocessable
from tollgate.notifier.models import SmsKeywordRule, SmsMessage
from tollgate.notifier.sms import patterns, repository
from tollgate.notifier.webhooks import service as webhooks

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class InboundSms:
    """A provider's message, verified."""

    provider: str
    provider_message_id: str
    from_number: str
    to_number: str
    body: str


async def receive(session: AsyncSession, sms: InboundSms, now: datetime) -> tuple[uuid.UUID, bool]:
    """Store an inbound SMS for routing; returns its id and whether it is new (a
    provider retry of the same message id is a no-op)."""
    new_id = await repository.insert_message(
        session,
        {
            "id": uuid7(),
            "provider": sms.provider,
            "provider_message_id": sms.provider_message_id,
            "from_number": sms.from_number,
            "to_number": sms.to_number,
            "body": sms.body,
            "received_at": now,
            "routed": False,
        },
    )
    if new_id is not None:
        return new_id, True
    existing = await repository.message_by_provider_id(
        session, sms.provider, sms.provider_message_id
    )
    assert existing is not None
    return existing.id, False


@dataclass(frozen=True)
class Route:
    """Where a message goes and why."""

    org_id: uuid.UUID | None
    routed_by: SmsRoute
    rule_id: uuid.UUID | None = None


def keyword_match(rule: SmsKeywordRule, body: str) -> bool:
    """Whether a keyword rule matches a message body."""
    if rule.kind == "first_word":
        words = body.split(maxsplit=1)
        return bool(words) and words[0].strip(".,!?:;").casefold() == rule.pattern.casefold()
    return patterns.searches(rule.pattern, body)


async def choose_route(session: AsyncSession, message: SmsMessage) -> Route:
    """Apply the routing rules in order. Every rule looks at the number the message was
    sent to: what a sender writes to one number is never routed by what happened on
    another (an org that wrote to the sender from its own number does not read what the
    sender sends to a shared one), and a keyword, which the sender chose, comes before
    the sender's history on that number."""
    org_id = await repository.org_of_number(session, message.to_number)
    if org_id is not None:
        return Route(org_id, SmsRoute.ASSIGNED_NUMBER)
    # An org that wrote to this sender recently from this number (released since).
    org_id = await repository.conversation_org(
        session, message.from_number, message.to_number, message.received_at
    )
    if org_id is not None:
        return Route(org_id, SmsRoute.CONVERSATION)
    for rule in await repository.keyword_rules(session):
        if keyword_match(rule, message.body):
            return Route(rule.org_id, SmsRoute.KEYWORD, rule.id)
    org_id = await repository.last_org_of_sender(
        session, message.from_number, message.to_number, message.id
    )
    if org_id is not None:
        return Route(org_id, SmsRoute.CONVERSATION)
    return Route(None, SmsRoute.ADMIN_INBOX)


async def route_pending(session: AsyncSession, *, now: datetime, limit: int = 100) -> int:
    """Route up to `limit` unrouted messages; returns how many were routed."""
    messages = await repository.claim_unrouted(session, limit)
    for message in messages:
        route = await choose_route(session, message)
        await repository.mark_routed(
            session,
            message.id,
            org_id=route.org_id,
            routed_by=route.routed_by.value,
            rule_id=route.rule_id,
            routed_at=now,
        )
        # Later messages of the same batch see this one as conversation history.
        message.routed, message.org_id = True, route.org_id
        await session.flush()
        event = await emit(
            session,
            SmsReceived(
                message_id=message.id,
                provider=message.provider,
                provider_message_id=message.provider_message_id,
                org_id=route.org_id,
                from_number=message.from_number,
                to_number=message.to_number,
                body=message.body,
                routed_by=route.routed_by,
                received_at=message.received_at,
            ),
            subject=str(message.id),
        )
        await webhooks.queue_for_event(session, event, now)
    return len(messages)


def valid_number(number: str) -> str:
    """An E.164 number, or 422."""
    if not E164.match(number):
        raise Unprocessable("invalid-phone-number", "Numbers are E.164, e.g. +14155550100.")
    return number


async def add_keyword_rule(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    kind: str,
    pattern: str,
    priority: int,
    now: datetime,
) -> SmsKeywordRule:
    """A new keyword rule; regexes are compiled by RE2 first, so a bad one, or one that
    needs backtracking (backreferences, lookaround), is a 422."""
    rule = SmsKeywordRule(
        id=uuid7(),
        org_id=org_id,
        kind=kind,
        pattern=_checked_pattern(kind, pattern),
        priority=priority,
        created_at=now,
    )
    await repository.add_rule(session, rule)
    return rule


def _checked_pattern(kind: str, pattern: str) -> str:
    """The pattern to store for a rule of `kind`, or 422: a regex RE2 compiles, stored as
    checked (its whitespace is significant); a first word, trimmed."""
    if kind == "regex":
        try:
            patterns.check(pattern)
        except patterns.InvalidPattern as exc:
            raise Unprocessable(
                "invalid-pattern",
                f"Invalid regex: {exc}. Patterns run on RE2: no backreferences or lookaround.",
            ) from exc
        return pattern
    if not pattern.strip() or len(pattern.split()) != 1:
        raise Unprocessable("invalid-keyword", "A first-word keyword is one word.")
    return pattern.strip()


async def edit_keyword_rule(
    session: AsyncSession,
    rule_id: uuid.UUID,
    changes: dict[str, Any],
    change: AuditChange | None = None,
) -> SmsKeywordRule:
    """Apply a partial change to a keyword rule (404 when there is none): its org, kind,
    pattern or priority (the priority reorders it). The kind and pattern it ends up
    with are checked as a new rule's are. `change` receives the rule before and after,
    for the audit record."""
    rule = await repository.rule(session, rule_id, for_update=True)
    if rule is None:
        raise NotFound("not-found", "No such keyword rule.")
    before = _rule_settings(rule)
    kind = changes.get("kind", rule.kind)
    if "kind" in changes or "pattern" in changes:
        rule.pattern = _checked_pattern(kind, changes.get("pattern", rule.pattern))
        rule.kind = kind
    if "org_id" in changes:
        rule.org_id = changes["org_id"]
    if "priority" in changes:
        rule.priority = changes["priority"]
    await session.flush()
    if change is not None:
        change.note(before, _rule_settings(rule))
    return rule


def _rule_settings(rule: SmsKeywordRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in ("org_id", "kind", "pattern", "priority")}


async def mark_read(
    session: AsyncSession,
    org_id: uuid.UUID | None,
    message_id: uuid.UUID,
    read: bool,
    now: datetime,
) -> SmsMessage:
    """Mark a message of an inbox read or unread; 404 for another inbox's message."""
    message = await repository.message_in_inbox(session, org_id, message_id)
    if message is None:
        raise NotFound("not-found", "No such message.")
    message.read_at = (message.read_at or now) if read else None
    await session.flush()
    return message
