"""Settings of the billing service; every field can be set as `TOLLGATE_BILLING_<NAME>`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tollgate.contracts.events.billing import BalanceMode
from tollgate.kit.settings import ServiceSettings, settings_dependency


class CreditPack(BaseModel):
    """A pack of credits customers can buy by card."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="stable pack id")
    credits: int = Field(gt=0, le=10**12, description="credits added when paid")
    price: int = Field(gt=0, le=10**10, description="price in minor currency units")
    currency: str = Field("usd", pattern=r"^[a-z]{3}$", description="ISO 4217, lower case")


DEFAULT_PACKS = [
    CreditPack(id="small", credits=10_000, price=1_000),
    CreditPack(id="medium", credits=60_000, price=5_000),
    CreditPack(id="large", credits=150_000, price=10_000),
]


class Settings(ServiceSettings):
    """Billing service settings."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_BILLING_", extra="ignore")

    port: int = Field(8083, ge=1, le=65535, description="HTTP port")
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/tollgate_billing",
        description="this service's own database",
    )

    default_mode: BalanceMode = Field(
        BalanceMode.PREPAID,
        description="mode of an org billing first hears of (from a debit or a top-up)",
    )
    default_low_threshold: int = Field(
        1000, ge=0, description="credits; low-balance threshold of a new account"
    )
    default_reserve: int = Field(
        0,
        ge=0,
        description="credits; a new prepaid account is declared exhausted at or below this "
        "balance, so the gateway stops it before the balance crosses zero",
    )
    consume_batch_max: int = Field(
        5000, ge=1, le=50_000, description="request events per consumer batch (one transaction)"
    )
    offset_commit_interval_seconds: float = Field(
        1.0,
        ge=0,
        description="how often Kafka offsets are committed while a backlog is worked off "
        "(0: after every batch); debited request ids in the database are the truth, the "
        "offsets only say where to resume",
    )
    balance_publish_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="a balance that changed without a status change is re-published at most "
        "this long after the change",
    )
    idempotency_retention_hours: int = Field(
        48, ge=24, description="how long top-up/adjustment Idempotency-Keys are remembered"
    )
    dedup_retention_hours: int = Field(
        192,
        ge=1,
        description="how long debited request ids are remembered; keep it above the "
        "request topic's retention (7 days) so a replay never debits twice",
    )

    plan_period_check_seconds: float = Field(
        30.0,
        gt=0,
        description="how often orgs whose plan period or trial ended move to the next "
        "period (a waiting downgrade applies then), and orgs whose grace ended are suspended",
    )

    stripe_secret_key: SecretStr = Field(
        SecretStr(""),
        description="Stripe secret key (sk_live_/sk_test_/rk_); empty: the `manual` payment "
        "provider (operators top up, customers cannot pay by card)",
    )
    stripe_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="signing secret (whsec_) of the Stripe webhook endpoint "
        "/v1/payments/stripe/webhook; empty: every webhook is refused",
    )
    stripe_api_base: str = Field(
        "https://api.stripe.com", description="Stripe API base address (a fake one in tests)"
    )
    stripe_webhook_tolerance_seconds: int = Field(
        300, ge=1, le=3600, description="oldest accepted webhook signature timestamp"
    )
    console_url: str = Field(
        "http://127.0.0.1:8085",
        description="the console's address: Checkout returns the customer to its billing page",
    )
    subscription_grace_seconds: float = Field(
        3 * 86400.0,
        ge=0,
        description="after a failed subscription invoice, how long the org keeps its plan "
        "before it is suspended (402 at the gateway) unless the invoice is paid",
    )
    credit_packs: list[CreditPack] = Field(
        default_factory=lambda: list(DEFAULT_PACKS),
        description="credit packs on sale (JSON list of {id, credits, price, currency})",
    )

    auto_top_up_credits_per_unit: int = Field(
        10,
        ge=1,
        le=10**6,
        description="auto top-up price: credits bought per minor currency unit (a charge is "
        "rounded up to whole units)",
    )
    auto_top_up_currency: str = Field(
        "usd", pattern=r"^[a-z]{3}$", description="currency of auto top-up charges and caps"
    )
    auto_top_up_poll_seconds: float = Field(
        0.5, gt=0, description="how often an idle auto top-up worker looks for queued charges"
    )
    auto_top_up_workers: int = Field(
        2, ge=0, le=32, description="concurrent auto top-up workers per replica (0: none)"
    )
    auto_top_up_max_attempts: int = Field(
        4, ge=1, le=20, description="tries of a charge on transient provider errors"
    )
    auto_top_up_retry_seconds: float = Field(
        2.0, gt=0, description="first back-off after a transient error; doubles each try"
    )

    @property
    def payment_provider(self) -> str:
        """`stripe` when a Stripe secret key is set, else `manual`."""
        return "stripe" if self.stripe_secret_key.get_secret_value() else "manual"


CurrentSettings = Annotated[Settings, Depends(settings_dependency(Settings))]
"""FastAPI dependency: the running app's settings."""
