"""HTTP transport of webhooks: validate, authorize, delegate. Every route with an id
looks it up within the caller's org, so another org's id is a 404."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response

from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    decode_cursor,
    int_cursor,
    page_after,
    page_of,
)
from tollgate.kit.problems import NotFound, Unprocessable, documented_problems
from tollgate.notifier.models import WebhookEndpoint
from tollgate.notifier.parameters import DeliveryId
from tollgate.notifier.state import Notifier
from tollgate.notifier.webhooks import repository, service
from tollgate.notifier.webhooks.catalog import EVENT_TYPES, example_body
from tollgate.notifier.webhooks.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointPatch,
    EventTypeOut,
    RecoverRequest,
    RecoverResult,
    SecretRotated,
    TestSent,
)

router = APIRouter(tags=["webhooks"])
ORG = "/orgs/{org_id}/webhooks"
_ENDPOINT_ERRORS = documented_problems(
    {404: ("No such webhook endpoint in the org (or deleted).", ["endpoint-not-found"])}
)
_DELIVERY_ERRORS = documented_problems(
    {404: ("No such delivery in the org.", ["delivery-not-found"])}
)


async def _endpoint(db: DbSession, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await repository.endpoint_of_org(db, org_id, endpoint_id, for_update=True)
    if endpoint is None:
        raise NotFound("endpoint-not-found", "No such webhook endpoint.")
    return endpoint


@router.get("/webhooks/event-types")
async def list_event_types(
    principal: CurrentPrincipal, cursor: Cursor = None, limit: PageSize = MAX_PAGE_SIZE
) -> Page[EventTypeOut]:
    """The event types endpoints can subscribe to, with example bodies, in the catalog's
    order."""
    page, next_cursor = page_after(
        list(enumerate(EVENT_TYPES)), cursor, limit, lambda e: (e[0],), (int,)
    )
    return Page[EventTypeOut](
        items=[
            EventTypeOut(
                type=i.type,
                description=i.description,
                descriptions={"en": i.description, "zh-Hans": i.description_zh},
                example=example_body(i),
            )
            for _, i in page
        ],
        next_cursor=next_cursor,
    )


@router.get(ORG + "/endpoints")
async def list_endpoints(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[EndpointOut]:
    """The org's endpoints, oldest first, one page at a time."""
    authorize_org(principal, org_id, Role.viewer)
    after = decode_cursor(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.endpoints_of_org(db, org_id, after=after, limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda e: (e.created_at, e.id))
    return Page[EndpointOut](items=[EndpointOut.of(e) for e in page], next_cursor=next_cursor)


@router.post(ORG + "/endpoints", status_code=201)
async def create_endpoint(
    org_id: uuid.UUID,
    body: EndpointCreate,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> EndpointCreated:
    authorize_org(principal, org_id, Role.developer)
    notifier.require_sealing()
    async with db.begin():
        endpoint, secret = await service.create_endpoint(
            db,
            notifier.sealer,
            org_id,
            url=body.url,
            description=body.description,
            event_types=body.event_types,
            enabled=body.enabled,
            now=notifier.clock.now(),
            policy=notifier.network_policy,
        )
    return EndpointCreated(**EndpointOut.of(endpoint).model_dump(), secret=secret)


@router.get(ORG + "/endpoints/{endpoint_id}", responses=_ENDPOINT_ERRORS)
async def get_endpoint(
    org_id: uuid.UUID, endpoint_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> EndpointOut:
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        return EndpointOut.of(await _endpoint(db, org_id, endpoint_id))


@router.patch(ORG + "/endpoints/{endpoint_id}", responses=_ENDPOINT_ERRORS)
async def update_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointPatch,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
    change: RecordedChange,
) -> EndpointOut:
    authorize_org(principal, org_id, Role.developer)
    changes = body.model_dump(exclude_unset=True)
    if any(v is None for v in changes.values()):
        raise Unprocessable("validation", "Fields cannot be set to null.")
    async with db.begin():
        endpoint = await service.update_endpoint(
            db,
            await _endpoint(db, org_id, endpoint_id),
            changes,
            notifier.clock.now(),
            notifier.network_policy,
            change,
        )
        return EndpointOut.of(endpoint)


@router.delete(ORG + "/endpoints/{endpoint_id}", status_code=204, responses=_ENDPOINT_ERRORS)
async def delete_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> Response:
    """Delete an endpoint: it receives nothing more. Deleting it again changes nothing
    and answers 204 too (until retention removes the row)."""
    authorize_org(principal, org_id, Role.developer)
    async with db.begin():
        endpoint = await repository.endpoint_of_org(
            db, org_id, endpoint_id, for_update=True, deleted=True
        )
        if endpoint is None:
            raise NotFound("endpoint-not-found", "No such webhook endpoint.")
        if endpoint.deleted_at is None:
            await service.delete_endpoint(db, endpoint, notifier.clock.now())
    return Response(status_code=204)


@router.post(ORG + "/endpoints/{endpoint_id}/rotate-secret", responses=_ENDPOINT_ERRORS)
async def rotate_secret(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> SecretRotated:
    authorize_org(principal, org_id, Role.developer)
    notifier.require_sealing()
    async with db.begin():
        endpoint = await _endpoint(db, org_id, endpoint_id)
        secret = await service.rotate_secret(db, notifier.sealer, endpoint, notifier.clock.now())
        assert endpoint.previous_secret_expires_at is not None
        return SecretRotated(
            secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at
        )


@router.post(ORG + "/endpoints/{endpoint_id}/test", status_code=202, responses=_ENDPOINT_ERRORS)
async def send_test(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> TestSent:
    authorize_org(principal, org_id, Role.developer)
    async with db.begin():
        endpoint = await _endpoint(db, org_id, endpoint_id)
        delivery_id = await service.queue_ping(db, endpoint, notifier.clock.now())
        delivery = await repository.delivery_of_org(db, org_id, delivery_id)
        assert delivery is not None
        return TestSent(delivery_id=delivery_id, message_id=delivery.message_id)


@router.get(ORG + "/endpoints/{endpoint_id}/deliveries", responses=_ENDPOINT_ERRORS)
async def list_deliveries(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    db: DbSession,
    state: Literal["pending", "succeeded", "failed"] | None = None,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first, one page at a time."""
    authorize_org(principal, org_id, Role.viewer)
    before = int_cursor(cursor)
    async with db.begin():
        endpoint = await _endpoint(db, org_id, endpoint_id)
        rows = await repository.deliveries_of_endpoint(
            db, endpoint.id, state=state, before_id=before, limit=limit + 1
        )
    page, next_cursor = page_of(rows, limit, lambda row: (row[0].id,))
    return Page[DeliveryOut](items=[DeliveryOut.of(d, t) for d, t in page], next_cursor=next_cursor)


@router.post(ORG + "/endpoints/{endpoint_id}/recover", responses=_ENDPOINT_ERRORS)
async def recover(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: RecoverRequest,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> RecoverResult:
    authorize_org(principal, org_id, Role.developer)
    async with db.begin():
        endpoint = await _endpoint(db, org_id, endpoint_id)
        count = await service.recover(db, endpoint, body.since, notifier.clock.now())
        return RecoverResult(requeued=count)


async def _detail(db: DbSession, org_id: uuid.UUID, delivery_id: int) -> DeliveryDetail:
    delivery = await repository.delivery_of_org(db, org_id, delivery_id)
    if delivery is None:
        raise NotFound("delivery-not-found", "No such delivery.")
    event_type = await repository.event_type_of(db, delivery.message_id)
    attempts = await repository.attempts_of(db, delivery.id)
    return DeliveryDetail(
        **DeliveryOut.of(delivery, event_type).model_dump(),
        attempt_log=[AttemptOut.of(a) for a in attempts],
    )


@router.get(ORG + "/deliveries/{delivery_id}", responses=_DELIVERY_ERRORS)
async def get_delivery(
    org_id: uuid.UUID, delivery_id: DeliveryId, principal: CurrentPrincipal, db: DbSession
) -> DeliveryDetail:
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        return await _detail(db, org_id, delivery_id)


@router.post(ORG + "/deliveries/{delivery_id}/retry", status_code=202, responses=_DELIVERY_ERRORS)
async def retry_delivery(
    org_id: uuid.UUID,
    delivery_id: DeliveryId,
    principal: CurrentPrincipal,
    db: DbSession,
    notifier: Notifier,
) -> DeliveryDetail:
    authorize_org(principal, org_id, Role.developer)
    async with db.begin():
        await service.retry_delivery(db, org_id, delivery_id, notifier.clock.now())
        return await _detail(db, org_id, delivery_id)
