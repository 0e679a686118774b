"""Webhooks (notifier): the org's endpoints with their event-type filter, creating one
(the `whsec_` signing secret is shown once), an endpoint's page with its delivery log,
rotating the secret (shown once), sending a test, disabling/enabling, and retrying a
delivery.

Developers, owners and admins see the write controls; notifier authorises every write
and a refusal is shown inline.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tollgate.console.backends import BackendDown, BackendProblem
from tollgate.console.web import (
    CurrentSession,
    OrgContext,
    backends,
    org_context,
    panel,
    refusal,
    render,
)

router = APIRouter()
STATES = ("pending", "succeeded", "failed")


def _nav(ctx: OrgContext) -> dict[str, Any]:
    return {"ctx": ctx, "me": ctx.me, "orgs": ctx.orgs, "org": ctx.org}


async def _list_page(
    request: Request, org_id: uuid.UUID, session: CurrentSession, status: int = 200, **extra: Any
) -> Response:
    client = backends(request)
    token = session.access_token
    ctx, endpoints, types = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.endpoints(token, org_id)),
        panel(client.event_types(token)),
    )
    context = {"endpoints": endpoints, "types": types, "values": {}, "errors": {}, **extra}
    return render(request, "webhooks.html", {**_nav(ctx), **context}, status=status)


@router.get("/orgs/{org_id}/webhooks")
async def webhook_list(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    return await _list_page(request, org_id, session)


@router.post("/orgs/{org_id}/webhooks")
async def webhook_create(request: Request, org_id: uuid.UUID, session: CurrentSession) -> Response:
    form = await request.form()
    url = str(form.get("url") or "").strip()
    description = str(form.get("description") or "").strip()
    chosen = [v for v in form.getlist("event_types") if isinstance(v, str)]
    body = {"url": url, "description": description, "event_types": chosen}
    values = {"url": url, "description": description, "event_types": chosen}
    # The page's navigation first: once the secret exists, nothing may keep it from the page.
    ctx = await org_context(request, session, org_id)
    try:
        created = await backends(request).create_endpoint(session.access_token, org_id, body)
    except (BackendProblem, BackendDown) as exc:
        return await _list_page(request, org_id, session, values=values, **refusal(exc))
    return render(
        request,
        "webhook_secret.html",
        {**_nav(ctx), "endpoint_id": created.id, "url": created.url, "secret": created.secret},
    )


async def _endpoint_page(
    request: Request,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    session: CurrentSession,
    *,
    state: str | None = None,
    cursor: str | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    client = backends(request)
    token = session.access_token
    chosen = state if state in STATES else None
    ctx, endpoint, deliveries = await asyncio.gather(
        org_context(request, session, org_id),
        client.endpoint(token, org_id, endpoint_id),
        panel(client.deliveries(token, org_id, endpoint_id, cursor, chosen)),
    )
    return render(
        request,
        "webhook.html",
        {
            **_nav(ctx),
            "endpoint": endpoint,
            "deliveries": deliveries,
            "state": chosen or "",
            "states": STATES,
            "notice": request.query_params.get("done"),
            **extra,
        },
        status=status,
    )


@router.get("/orgs/{org_id}/webhooks/{endpoint_id}")
async def webhook_page(
    request: Request,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    session: CurrentSession,
    state: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return await _endpoint_page(request, org_id, endpoint_id, session, state=state, cursor=cursor)


async def _action(
    request: Request,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    session: CurrentSession,
    action: str,
    delivery_id: int | None = None,
) -> Response:
    client = backends(request)
    token = session.access_token
    try:
        if action == "rotate":
            # Read before the write: the new secret must reach the page whatever answers after.
            ctx, endpoint = await asyncio.gather(
                org_context(request, session, org_id),
                client.endpoint(token, org_id, endpoint_id),
            )
            rotated = await client.rotate_endpoint_secret(token, org_id, endpoint_id)
            return render(
                request,
                "webhook_secret.html",
                {
                    **_nav(ctx),
                    "endpoint_id": endpoint_id,
                    "url": endpoint.url,
                    "secret": rotated.secret,
                    "previous_until": rotated.previous_secret_expires_at,
                },
            )
        if action == "test":
            await client.send_test(token, org_id, endpoint_id)
        elif action == "retry" and delivery_id is not None:
            await client.retry_delivery(token, org_id, delivery_id)
        else:
            body = {"enabled": action == "enable"}
            await client.update_endpoint(token, org_id, endpoint_id, body)
    except (BackendProblem, BackendDown) as exc:
        refused = refusal(exc, errors=None)
        return await _endpoint_page(request, org_id, endpoint_id, session, **refused)
    return RedirectResponse(f"/orgs/{org_id}/webhooks/{endpoint_id}?done={action}", status_code=303)


@router.post("/orgs/{org_id}/webhooks/{endpoint_id}/{action}")
async def webhook_action(
    request: Request,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    action: str,
    session: CurrentSession,
) -> Response:
    if action not in ("rotate", "test", "enable", "disable"):
        return Response(status_code=404)
    return await _action(request, org_id, endpoint_id, session, action)


@router.post("/orgs/{org_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry")
async def delivery_retry(
    request: Request,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: int,
    session: CurrentSession,
) -> Response:
    return await _action(request, org_id, endpoint_id, session, "retry", delivery_id)
