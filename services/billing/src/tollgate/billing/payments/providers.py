"""Payment providers behind one interface: `manual` and `stripe`.

`manual` is today's way: operators add credits (`POST /v1/orgs/{id}/credits`) and
customers cannot pay by card; `stripe` creates Stripe Checkout Sessions and is told
about payments by Stripe's webhooks (`payments.webhooks`). Settings choose: a Stripe
secret key selects `stripe`, none `manual`. The only network call here is the
provider's own API; nothing here touches the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import stripe

from tollgate.billing.config import CreditPack, Settings
from tollgate.kit.problems import Conflict, ServiceUnavailable


@dataclass(frozen=True)
class PlanTerms:
    """What a subscription checkout needs to know of a plan."""

    plan_id: uuid.UUID
    name: str
    monthly_price: int
    currency: str


@dataclass(frozen=True)
class CheckoutSession:
    """Where to send the customer to pay, and the provider's reference of it."""

    session_id: str
    url: str


class PaymentProvider(Protocol):
    """What billing needs from a payment provider."""

    name: str

    async def create_checkout(
        self, *, purchase_id: uuid.UUID, org_id: uuid.UUID, pack: CreditPack, return_url: str
    ) -> CheckoutSession:
        """Start a hosted payment for `pack`; the purchase id travels with it."""
        ...

    async def create_subscription_checkout(
        self, *, org_id: uuid.UUID, plan: PlanTerms, return_url: str
    ) -> CheckoutSession:
        """Start a hosted monthly subscription to `plan` for the org."""
        ...


def not_configured() -> Conflict:
    """The answer to a card payment asked of the `manual` provider."""
    return Conflict(
        "payments-not-configured",
        "Card payments are not set up here; an operator adds credits on request.",
    )


class ManualProvider:
    """No card payments: operators add credits by hand."""

    name = "manual"

    async def create_checkout(
        self, *, purchase_id: uuid.UUID, org_id: uuid.UUID, pack: CreditPack, return_url: str
    ) -> CheckoutSession:
        raise not_configured()

    async def create_subscription_checkout(
        self, *, org_id: uuid.UUID, plan: PlanTerms, return_url: str
    ) -> CheckoutSession:
        raise not_configured()


class StripeProvider:
    """Stripe Checkout through the official SDK (async, over httpx)."""

    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        self._client = stripe.StripeClient(
            settings.stripe_secret_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base},
            http_client=stripe.HTTPXClient(timeout=20),
            max_network_retries=2,
        )

    async def create_checkout(
        self, *, purchase_id: uuid.UUID, org_id: uuid.UUID, pack: CreditPack, return_url: str
    ) -> CheckoutSession:
        metadata = {"purchase_id": str(purchase_id), "org_id": str(org_id), "pack_id": pack.id}
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "payment",
                    "client_reference_id": str(purchase_id),
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": pack.currency,
                                "unit_amount": pack.price,
                                "product_data": {"name": f"{pack.credits} credits"},
                            },
                        }
                    ],
                    "metadata": metadata,
                    "payment_intent_data": {"metadata": metadata},
                    "success_url": f"{return_url}?purchase={purchase_id}&result=success",
                    "cancel_url": f"{return_url}?purchase={purchase_id}&result=cancelled",
                },
                # A retried request (ours or the SDK's) never opens a second session.
                options={"idempotency_key": f"checkout-{purchase_id}"},
            )
        except stripe.StripeError as exc:
            raise ServiceUnavailable(
                "payment-provider-unavailable",
                f"The payment provider did not answer ({type(exc).__name__}); try again.",
            ) from None
        if not session.url:
            raise ServiceUnavailable("payment-provider-unavailable", "No checkout address.")
        return CheckoutSession(session_id=session.id, url=session.url)

    async def create_subscription_checkout(
        self, *, org_id: uuid.UUID, plan: PlanTerms, return_url: str
    ) -> CheckoutSession:
        metadata = {"org_id": str(org_id), "plan_id": str(plan.plan_id)}
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "subscription",
                    "client_reference_id": str(org_id),
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": plan.currency,
                                "unit_amount": plan.monthly_price,
                                "recurring": {"interval": "month"},
                                "product_data": {"name": plan.name},
                            },
                        }
                    ],
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": f"{return_url}?plan={plan.plan_id}&result=success",
                    "cancel_url": f"{return_url}?plan={plan.plan_id}&result=cancelled",
                }
            )
        except stripe.StripeError as exc:
            raise ServiceUnavailable(
                "payment-provider-unavailable",
                f"The payment provider did not answer ({type(exc).__name__}); try again.",
            ) from None
        if not session.url:
            raise ServiceUnavailable("payment-provider-unavailable", "No checkout address.")
        return CheckoutSession(session_id=session.id, url=session.url)


def payment_provider(settings: Settings) -> PaymentProvider:
    """The provider the settings select."""
    if settings.payment_provider == "stripe":
        return StripeProvider(settings)
    return ManualProvider()
