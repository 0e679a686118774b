"""HTTP transport of auto top-up: settings, and the Checkout that saves a card."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from tollgate.billing.config import CurrentSettings, Settings
from tollgate.billing.payments import auto_top_up as service
from tollgate.billing.payments.auto_top_up_schemas import (
    AutoTopUpChargeOut,
    AutoTopUpIn,
    AutoTopUpOut,
    SetupSessionOut,
)
from tollgate.billing.payments.providers import app_provider, not_configured
from tollgate.kit.audit import RecordedChange
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org
from tollgate.kit.db import DbSession
from tollgate.kit.problems import documented_problems

router = APIRouter(tags=["auto top-up"])

_ERRORS = documented_problems(
    {
        401: "Missing or invalid token.",
        403: "Role too low.",
        404: "Not a member of this organisation.",
        409: (
            "No card saved yet, or card payments are not set up (manual provider).",
            ["no-payment-method", "payments-not-configured"],
        ),
        422: ("Invalid body, or a target not above the threshold.", ["target-not-above-threshold"]),
        503: ("The payment provider did not answer.", ["payment-provider-unavailable"]),
    }
)


def _audited(found: service.AutoTopUpView) -> dict[str, Any]:
    """The stored settings a PUT can change, as its audit record notes them."""
    return {
        "enabled": found.enabled,
        "threshold": found.threshold,
        "target": found.target,
        "monthly_cap": found.monthly_cap,
        "currency": found.currency,
    }


def _out(found: service.AutoTopUpView, settings: Settings) -> AutoTopUpOut:
    return AutoTopUpOut(
        enabled=found.enabled,
        threshold=found.threshold,
        target=found.target,
        monthly_cap=found.monthly_cap,
        currency=found.currency,
        credits_per_unit=settings.auto_top_up_credits_per_unit,
        payment_method_saved=found.payment_method_saved,
        spent_this_month=found.spent_this_month,
        last_charge=None
        if found.last_charge is None
        else AutoTopUpChargeOut.model_validate(found.last_charge, from_attributes=True),
    )


@router.get("/orgs/{org_id}/auto-top-up", response_model=AutoTopUpOut, responses=_ERRORS)
async def get_auto_top_up(
    settings: CurrentSettings, org_id: uuid.UUID, principal: CurrentPrincipal, db: DbSession
) -> AutoTopUpOut:
    """The org's auto top-up settings (members)."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        return _out(await service.view(db, org_id, settings), settings)


@router.put("/orgs/{org_id}/auto-top-up", response_model=AutoTopUpOut, responses=_ERRORS)
async def put_auto_top_up(
    settings: CurrentSettings,
    org_id: uuid.UUID,
    body: AutoTopUpIn,
    principal: CurrentPrincipal,
    db: DbSession,
    change: RecordedChange,
) -> AutoTopUpOut:
    """Set the org's auto top-up (owners); the next crossing of the threshold charges."""
    authorize_org(principal, org_id, Role.owner)
    async with db.begin():
        before = await service.view(db, org_id, settings)
        await service.configure(
            db,
            org_id,
            settings,
            enabled=body.enabled,
            threshold=body.threshold,
            target=body.target,
            monthly_cap=body.monthly_cap,
        )
    async with db.begin():
        after = await service.view(db, org_id, settings)
    change.note(_audited(before), _audited(after))
    return _out(after, settings)


@router.post(
    "/orgs/{org_id}/auto-top-up/setup-session",
    status_code=201,
    response_model=SetupSessionOut,
    responses=_ERRORS,
)
async def start_setup_session(
    settings: CurrentSettings, org_id: uuid.UUID, request: Request, principal: CurrentPrincipal
) -> SetupSessionOut:
    """Save a card for auto top-ups (owners): a Stripe Checkout Session in setup mode;
    the card is stored when Stripe reports the SetupIntent succeeded."""
    authorize_org(principal, org_id, Role.owner)
    provider = app_provider(request, settings)
    if provider.name == "manual":
        raise not_configured()
    session = await provider.create_setup_checkout(
        org_id=org_id,
        currency=settings.auto_top_up_currency,
        return_url=f"{settings.console_url.rstrip('/')}/orgs/{org_id}/billing",
    )
    return SetupSessionOut(checkout_url=session.url)
