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
from typing import Literal, Protocol

import stripe
from fastapi import Request

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


@dataclass(frozen=True)
class SavedPaymentMethod:
    """Where an off-session charge goes: the provider's payment method and customer."""

    payment_method_id: str
    customer_id: str | None


@dataclass(frozen=True)
class OffSessionCharge:
    """What an off-session charge came to.

    `succeeded`: paid; `failed`: the customer's bank or the provider said no
    (`failure`: card_declined or authentication_required); `retry`: a transient
    error (network, rate limit, provider outage) worth trying again.
    """

    outcome: Literal["succeeded", "processing", "failed", "retry"]
    payment_intent_id: str | None
    failure: str | None = None


class PaymentProvider(Protocol):
    """What billing needs from a payment provider."""

    name: str

    async def create_checkout(
        self,
        *,
        purchase_id: uuid.UUID,
        org_id: uuid.UUID,
        pack: CreditPack,
        return_url: str,
        save_card: bool = False,
    ) -> CheckoutSession:
        """Start a hosted payment for `pack`; the purchase id travels with it. With
        `save_card` the card is kept for off-session charges (auto top-up)."""
        ...

    async def create_subscription_checkout(
        self, *, org_id: uuid.UUID, plan: PlanTerms, return_url: str
    ) -> CheckoutSession:
        """Start a hosted monthly subscription to `plan` for the org."""
        ...

    async def create_setup_checkout(
        self, *, org_id: uuid.UUID, currency: str, return_url: str
    ) -> CheckoutSession:
        """Start a hosted page where the customer saves a card for auto top-ups."""
        ...

    async def charge_off_session(
        self,
        *,
        charge_id: uuid.UUID,
        org_id: uuid.UUID,
        method: SavedPaymentMethod,
        amount: int,
        currency: str,
    ) -> OffSessionCharge:
        """Charge a saved payment method without the customer; `charge_id` is the
        idempotency key, so asking twice charges once."""
        ...

    async def aclose(self) -> None:
        """Close the provider's HTTP connections."""
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
        self,
        *,
        purchase_id: uuid.UUID,
        org_id: uuid.UUID,
        pack: CreditPack,
        return_url: str,
        save_card: bool = False,
    ) -> CheckoutSession:
        raise not_configured()

    async def create_subscription_checkout(
        self, *, org_id: uuid.UUID, plan: PlanTerms, return_url: str
    ) -> CheckoutSession:
        raise not_configured()

    async def create_setup_checkout(
        self, *, org_id: uuid.UUID, currency: str, return_url: str
    ) -> CheckoutSession:
        raise not_configured()

    async def charge_off_session(
        self,
        *,
        charge_id: uuid.UUID,
        org_id: uuid.UUID,
        method: SavedPaymentMethod,
        amount: int,
        currency: str,
    ) -> OffSessionCharge:
        return OffSessionCharge("failed", None, "payments_not_configured")

    async def aclose(self) -> None:
        return None


class StripeProvider:
    """Stripe Checkout through the official SDK (async, over httpx)."""

    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        self._http = stripe.HTTPXClient(timeout=20)
        self._client = stripe.StripeClient(
            settings.stripe_secret_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base},
            http_client=self._http,
            max_network_retries=2,
        )

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def _open_checkout(
        self, params: dict[str, object], *, idempotency_key: str | None = None
    ) -> CheckoutSession:
        """Create a Checkout Session (any mode); a provider failure or an answer without
        an address is a 503 `payment-provider-unavailable`."""
        options: dict[str, str] = {}
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options=options,  # type: ignore[arg-type]
            )
        except stripe.StripeError as exc:
            raise ServiceUnavailable(
                "payment-provider-unavailable",
                f"The payment provider did not answer ({type(exc).__name__}); try again.",
            ) from None
        if not session.url:
            raise ServiceUnavailable("payment-provider-unavailable", "No checkout address.")
        return CheckoutSession(session_id=session.id, url=session.url)

    async def create_checkout(
        self,
        *,
        purchase_id: uuid.UUID,
        org_id: uuid.UUID,
        pack: CreditPack,
        return_url: str,
        save_card: bool = False,
    ) -> CheckoutSession:
        metadata = {"purchase_id": str(purchase_id), "org_id": str(org_id), "pack_id": pack.id}
        payment_intent_data: dict[str, object] = {"metadata": metadata}
        extra: dict[str, object] = {}
        if save_card:
            # Stripe keeps the card on a customer for later off-session charges and
            # reports it in payment_intent.succeeded.
            payment_intent_data["setup_future_usage"] = "off_session"
            extra["customer_creation"] = "always"
        params: dict[str, object] = {
            **extra,
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
            "payment_intent_data": payment_intent_data,
            "success_url": f"{return_url}?purchase={purchase_id}&result=success",
            "cancel_url": f"{return_url}?purchase={purchase_id}&result=cancelled",
        }
        # A retried request (ours or the SDK's) never opens a second session.
        return await self._open_checkout(params, idempotency_key=f"checkout-{purchase_id}")

    async def create_subscription_checkout(
        self, *, org_id: uuid.UUID, plan: PlanTerms, return_url: str
    ) -> CheckoutSession:
        metadata = {"org_id": str(org_id), "plan_id": str(plan.plan_id)}
        return await self._open_checkout(
            {
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

    async def create_setup_checkout(
        self, *, org_id: uuid.UUID, currency: str, return_url: str
    ) -> CheckoutSession:
        metadata = {"org_id": str(org_id), "purpose": "auto_top_up"}
        return await self._open_checkout(
            {
                "mode": "setup",
                "currency": currency,
                "customer_creation": "always",
                "client_reference_id": str(org_id),
                "metadata": metadata,
                "setup_intent_data": {"metadata": metadata},
                "success_url": f"{return_url}?auto_top_up=saved",
                "cancel_url": f"{return_url}?auto_top_up=cancelled",
            }
        )

    async def charge_off_session(
        self,
        *,
        charge_id: uuid.UUID,
        org_id: uuid.UUID,
        method: SavedPaymentMethod,
        amount: int,
        currency: str,
    ) -> OffSessionCharge:
        params: dict[str, object] = {
            "amount": amount,
            "currency": currency,
            "payment_method": method.payment_method_id,
            "confirm": True,
            "off_session": True,
            "description": "Tollgate auto top-up",
            "metadata": {
                "purchase_id": str(charge_id),
                "org_id": str(org_id),
                "purpose": "auto_top_up",
            },
        }
        if method.customer_id:
            params["customer"] = method.customer_id
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": str(charge_id)},  # the job id
            )
        except stripe.CardError as exc:
            # Declined, or the bank wants the customer (3-D Secure): not for a retry.
            failed = getattr(exc.error, "payment_intent", None)
            code = exc.code or "card_declined"
            return OffSessionCharge(
                "failed",
                getattr(failed, "id", None),
                "authentication_required" if code == "authentication_required" else "card_declined",
            )
        except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError):
            return OffSessionCharge("retry", None, "provider_unavailable")
        except stripe.StripeError:
            return OffSessionCharge("failed", None, "card_declined")
        if intent.status == "succeeded":
            return OffSessionCharge("succeeded", intent.id)
        if intent.status == "processing":  # a bank debit: its webhook settles it
            return OffSessionCharge("processing", intent.id)
        reason = (
            "authentication_required" if intent.status == "requires_action" else "card_declined"
        )
        return OffSessionCharge("failed", intent.id, reason)


def payment_provider(settings: Settings) -> PaymentProvider:
    """The provider the settings select."""
    if settings.payment_provider == "stripe":
        return StripeProvider(settings)
    return ManualProvider()


def app_provider(request: Request, settings: Settings) -> PaymentProvider:
    """The app's payment provider, made once (one HTTP client for its lifetime)."""
    provider: PaymentProvider | None = getattr(request.app.state, "payment_provider", None)
    if provider is None:
        provider = request.app.state.payment_provider = payment_provider(settings)
    return provider
