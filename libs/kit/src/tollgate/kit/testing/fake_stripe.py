"""A loopback fake of the parts of Stripe's API billing uses, for offline tests.

It speaks Stripe's documented wire format: form-encoded `POST /v1/checkout/sessions`
with `Authorization: Bearer <secret key>` and `Idempotency-Key` (a repeated key gets
the first answer), JSON objects back. The official SDK is pointed at it
(`TOLLGATE_BILLING_STRIPE_API_BASE`). Tests then play the customer and Stripe: `pay`,
`expire`, `refund` and `dispute` build the events Stripe would send, signed with the
SDK's own helper (`stripe.WebhookSignature.generate_signature_header`, the v1 scheme
`t=...,v1=HMAC-SHA256(secret, "{t}.{payload}")`), and `deliver` posts them to
billing's webhook as Stripe does.

Saved cards and off-session charges: a Checkout Session in `setup` mode is completed
with `save_card` (the `setup_intent.succeeded` event, carrying the payment method,
the customer and the session's `setup_intent_data[metadata]`); `POST /v1/payment_intents`
with `confirm=true` charges a payment method at once. The outcome follows Stripe's
documented test payment methods: `pm_card_chargeDeclined` is a 402 `card_error`
(`card_declined`), `pm_card_authenticationRequired` a 402 `card_error`
(`authentication_required`, the intent left in `requires_payment_method`),
`pm_usBankAccount` (a bank debit) is left `processing` until `settle` builds its
`payment_intent.succeeded` or `payment_intent.payment_failed`, any other succeeds.
`fail_next_payment_intents(n)` answers the next `n` with a 500 `api_error`;
`payment_intent_succeeded` builds the `payment_intent.succeeded` event of a charge.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import orjson
import stripe
from aiohttp import web

from tollgate.kit import localdeps


class FakeStripe:
    """One fake Stripe account: its checkout sessions and the events they produce."""

    def __init__(self, secret_key: str, webhook_secret: str) -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        # What a session passes on to the intent it creates (`*_intent_data[...]`).
        self._intent_data: dict[str, dict[str, Any]] = {}
        self.payment_intent_attempts = 0
        self._failures_due = 0
        self.requests: list[dict[str, str]] = []
        self._idempotent: dict[str, dict[str, Any]] = {}
        self._subscriptions: dict[str, str] = {}  # subscription id -> its Checkout Session
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeStripe:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_post("/v1/payment_intents", self._create_payment_intent)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = localdeps.free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}{int(time.time() * 1000)}"

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            error = {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}
            return web.json_response(error, status=401)
        return None

    @staticmethod
    def _metadata(form: dict[str, str], prefix: str = "metadata") -> dict[str, str]:
        start = f"{prefix}["
        return {k[len(start) : -1]: v for k, v in form.items() if k.startswith(start)}

    async def _create_session(self, request: web.Request) -> web.Response:
        if (refused := self._unauthorized(request)) is not None:
            return refused
        key = request.headers.get("Idempotency-Key")
        if key and key in self._idempotent:
            return web.json_response(self._idempotent[key])
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append(form)
        session_id = self._id("cs")
        if form.get("mode") == "setup":
            setup = {
                "id": session_id,
                "object": "checkout.session",
                "mode": "setup",
                "status": "open",
                "currency": form.get("currency"),
                "client_reference_id": form.get("client_reference_id"),
                "metadata": self._metadata(form),
                "setup_intent": None,
                "customer": None,
                "success_url": form.get("success_url"),
                "cancel_url": form.get("cancel_url"),
                "url": f"{self.url}/setup/{session_id}",
            }
            self.sessions[session_id] = setup
            self._intent_data[session_id] = {
                "metadata": self._metadata(form, "setup_intent_data[metadata]")
            }
            return web.json_response(setup)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": form.get("client_reference_id"),
            "metadata": {
                k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")
            },
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "currency": form["line_items[0][price_data][currency]"],
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "payment_intent": None,
            "subscription": None,
            "customer": None,
            "url": f"{self.url}/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self._intent_data[session_id] = {
            "metadata": self._metadata(form, "payment_intent_data[metadata]"),
            "setup_future_usage": form.get("payment_intent_data[setup_future_usage]"),
            "customer_creation": form.get("customer_creation"),
            "subscription_metadata": self._metadata(form, "subscription_data[metadata]"),
        }
        if key:
            self._idempotent[key] = session
        return web.json_response(session)

    def fail_next_payment_intents(self, count: int) -> None:
        """Answer the next `count` PaymentIntent creations with a 500 (an outage)."""
        self._failures_due = count

    async def _create_payment_intent(self, request: web.Request) -> web.Response:
        if (refused := self._unauthorized(request)) is not None:
            return refused
        self.payment_intent_attempts += 1
        if self._failures_due > 0:
            self._failures_due -= 1
            error = {"error": {"type": "api_error", "message": "An unknown error occurred"}}
            return web.json_response(error, status=500)
        key = request.headers.get("Idempotency-Key")
        if key and key in self._idempotent:
            cached = self._idempotent[key]
            return web.json_response(cached["body"], status=cached["status"])
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        method = form.get("payment_method", "")
        intent: dict[str, Any] = {
            "id": self._id("pi"),
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "amount_received": 0,
            "currency": form["currency"],
            "customer": form.get("customer"),
            "payment_method": method,
            "metadata": self._metadata(form),
            "off_session": form.get("off_session") == "true",
            "status": "succeeded",
            "latest_charge": None,
        }
        status, body = 200, intent
        if method in ("pm_card_chargeDeclined", "pm_card_authenticationRequired"):
            code = (
                "card_declined"
                if method == "pm_card_chargeDeclined"
                else ("authentication_required")
            )
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {"type": "card_error", "code": code}
            status = 402
            body = {
                "error": {
                    "type": "card_error",
                    "code": code,
                    "decline_code": "generic_decline" if code == "card_declined" else code,
                    "message": "Your card was declined."
                    if code == "card_declined"
                    else "This payment requires authentication.",
                    "payment_intent": intent,
                }
            }
        elif method == "pm_usBankAccount":
            intent["status"] = "processing"
        else:
            intent["amount_received"] = intent["amount"]
            intent["latest_charge"] = f"ch_for_{intent['id']}"
        self.payment_intents[intent["id"]] = intent
        if key:
            self._idempotent[key] = {"status": status, "body": body}
        return web.json_response(body, status=status)

    # ------------------------------------------------------------ Stripe's events

    def save_card(self, session_id: str, payment_method: str = "pm_card_visa") -> bytes:
        """The customer completes a setup-mode Checkout: `setup_intent.succeeded` with
        the saved payment method, its customer and the session's SetupIntent metadata."""
        session = self.sessions[session_id]
        session["status"] = "complete"
        session["customer"] = session["customer"] or self._id("cus")
        session["setup_intent"] = session["setup_intent"] or self._id("seti")
        setup_intent = {
            "id": session["setup_intent"],
            "object": "setup_intent",
            "status": "succeeded",
            "usage": "off_session",
            "customer": session["customer"],
            "payment_method": payment_method,
            "metadata": dict(self._intent_data[session_id]["metadata"]),
        }
        return self.event("setup_intent.succeeded", setup_intent)

    def checkout_payment_succeeded(
        self, session_id: str, payment_method: str = "pm_card_visa"
    ) -> bytes:
        """`payment_intent.succeeded` of a paid payment-mode Checkout (after `pay`), with
        the session's `payment_intent_data` (metadata, `setup_future_usage`) and, when the
        card is kept, its customer."""
        session = self.sessions[session_id]
        passed = self._intent_data[session_id]
        if passed["customer_creation"] == "always":
            session["customer"] = session["customer"] or self._id("cus")
        intent = {
            "id": session["payment_intent"],
            "object": "payment_intent",
            "amount": session["amount_total"],
            "amount_received": session["amount_total"],
            "currency": session["currency"],
            "customer": session["customer"],
            "payment_method": payment_method,
            "setup_future_usage": passed["setup_future_usage"],
            "metadata": dict(passed["metadata"]),
            "status": "succeeded",
        }
        self.payment_intents[intent["id"]] = intent
        return self.event("payment_intent.succeeded", intent)

    def settle(self, payment_intent_id: str, *, paid: bool) -> bytes:
        """A processing PaymentIntent (a bank debit) settles: `payment_intent.succeeded`,
        or `payment_intent.payment_failed` with the bank's reason."""
        intent = self.payment_intents[payment_intent_id]
        if paid:
            intent.update(
                status="succeeded",
                amount_received=intent["amount"],
                latest_charge=f"ch_for_{intent['id']}",
            )
            return self.event("payment_intent.succeeded", dict(intent))
        intent.update(
            status="requires_payment_method",
            last_payment_error={"type": "card_error", "code": "insufficient_funds"},
        )
        return self.event("payment_intent.payment_failed", dict(intent))

    def payment_intent_succeeded(self, payment_intent_id: str) -> bytes:
        """`payment_intent.succeeded` of a charge made through the API."""
        return self.event("payment_intent.succeeded", dict(self.payment_intents[payment_intent_id]))

    def event(self, event_type: str, obj: dict[str, Any]) -> bytes:
        """A Stripe event envelope around `obj`, as Stripe sends it."""
        return orjson.dumps(
            {
                "id": self._id("evt"),
                "object": "event",
                "api_version": "2025-01-27.acacia",
                "created": int(time.time()),
                "livemode": False,
                "pending_webhooks": 1,
                "type": event_type,
                "data": {"object": obj},
            }
        )

    def pay(self, session_id: str, *, delayed: bool = False) -> bytes:
        """The customer pays: `checkout.session.completed` (unpaid yet when `delayed`)."""
        session = self.sessions[session_id]
        session["status"] = "complete"
        session["payment_status"] = "unpaid" if delayed else "paid"
        session["payment_intent"] = session["payment_intent"] or self._id("pi")
        return self.event("checkout.session.completed", dict(session))

    def subscribe(self, session_id: str) -> bytes:
        """The customer completes a subscription checkout (first invoice paid)."""
        session = self.sessions[session_id]
        session["status"] = "complete"
        session["payment_status"] = "paid"
        session["subscription"] = session["subscription"] or self._id("sub")
        session["customer"] = session["customer"] or self._id("cus")
        self._subscriptions[session["subscription"]] = session_id
        return self.event("checkout.session.completed", dict(session))

    def invoice(self, subscription_id: str, *, paid: bool, invoice_id: str | None = None) -> bytes:
        """`invoice.paid` or `invoice.payment_failed` for a subscription (the invoice
        names it, and the metadata the subscription was created with, under
        `parent.subscription_details`, as current API versions do), billed at the price
        of its Checkout. `invoice_id`: the same invoice again (paid after a failure)."""
        session_id = self._subscriptions.get(subscription_id)
        session = self.sessions.get(session_id or "", {})
        metadata = self._intent_data.get(session_id or "", {}).get("subscription_metadata")
        invoice_id = invoice_id or self._id("in")
        amount = int(session.get("amount_total") or 0)
        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "number": f"TEST-{invoice_id[-6:]}",
            "status": "paid" if paid else "open",
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "currency": session.get("currency", "usd"),
            "hosted_invoice_url": f"{self.url}/invoices/{invoice_id}",
            "invoice_pdf": f"{self.url}/invoices/{invoice_id}/pdf",
            "status_transitions": {"paid_at": int(time.time()) if paid else None},
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription_id,
                    "metadata": dict(metadata or {}),
                },
            },
        }
        return self.event("invoice.paid" if paid else "invoice.payment_failed", invoice)

    def async_succeeded(self, session_id: str) -> bytes:
        session = self.sessions[session_id]
        session["payment_status"] = "paid"
        return self.event("checkout.session.async_payment_succeeded", dict(session))

    def expire(self, session_id: str) -> bytes:
        session = self.sessions[session_id]
        session["status"] = "expired"
        return self.event("checkout.session.expired", dict(session))

    def refund(self, session_id: str, amount_refunded: int) -> bytes:
        """`charge.refunded` with the charge's cumulative refunded amount."""
        session = self.sessions[session_id]
        charge = {
            "id": f"ch_for_{session['payment_intent']}",
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": amount_refunded,
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "refunded": amount_refunded >= session["amount_total"],
        }
        return self.event("charge.refunded", charge)

    def dispute(self, session_id: str, amount: int) -> bytes:
        session = self.sessions[session_id]
        dispute = {
            "id": self._id("dp"),
            "object": "dispute",
            "amount": amount,
            "currency": session["currency"],
            "charge": f"ch_for_{session['payment_intent']}",
            "payment_intent": session["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        }
        return self.event("charge.dispute.created", dispute)

    def signature(self, payload: bytes, *, timestamp: int | None = None) -> str:
        """The `Stripe-Signature` header Stripe would send (the SDK's helper)."""
        return str(
            stripe.WebhookSignature.generate_signature_header(
                payload.decode(), self.webhook_secret, timestamp=timestamp
            )
        )

    async def deliver(
        self, client: httpx.AsyncClient, payload: bytes, *, signature: str | None = None
    ) -> httpx.Response:
        """POST an event to billing's webhook as Stripe does."""
        return await client.post(
            "/v1/payments/stripe/webhook",
            content=payload,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature or self.signature(payload),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )
