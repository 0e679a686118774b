"""Settings of the notifier service; every field can be set as `TOLLGATE_NOTIFIER_<NAME>`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tollgate.kit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Notifier service settings."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_NOTIFIER_", extra="ignore")

    port: int = Field(8084, ge=1, le=65535, description="HTTP port")
    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/tollgate_notifier",
        description="this service's own database",
    )
    console_url: str = Field(
        "http://localhost:8081",
        description="base URL of the web console; reset and invitation links point here",
    )
    workers_enabled: bool = Field(
        True,
        description="run the webhook, email and SMS workers and the retention job inside "
        "this process",
    )

    webhook_allowed_networks: str = Field(
        "",
        description="comma-separated CIDRs webhooks may reach although private/loopback "
        "(operator allowlist for local runs, e.g. `127.0.0.0/8`); empty = none",
    )
    webhook_timeout_seconds: float = Field(15.0, gt=0, description="per delivery attempt")
    webhook_concurrency: int = Field(16, ge=1, description="deliveries in flight per process")
    webhook_org_concurrency: int = Field(
        4, ge=1, description="deliveries in flight per org, across all processes"
    )
    webhook_poll_seconds: float = Field(0.5, gt=0, description="idle poll of the queue")
    webhook_disable_after_hours: float = Field(
        120.0, gt=0, description="an endpoint failing this long is disabled (5 days)"
    )

    email_backend: Literal["log", "resend"] = Field(
        "log", description="`log` writes mails to files under email_dir; `resend` sends them"
    )
    email_dir: str = Field("var/mail", description="where the `log` backend writes mails")
    email_from: str = Field(
        "Tollgate <no-reply@tollgate.localhost>", description="sender of every email"
    )
    email_max_attempts: int = Field(8, ge=1, description="tries before a mail is failed")
    resend_base_url: str = Field("https://api.resend.com", description="Resend API base URL")
    resend_api_key: SecretStr = Field(SecretStr(""), description="Resend API key (Bearer)")

    webhook_retention_days: int = Field(
        30,
        ge=0,
        description="finished (succeeded or failed) webhook deliveries, their attempt log "
        "and their messages are deleted this many days after they finished; 0 = keep forever",
    )
    email_retention_days: int = Field(
        30,
        ge=0,
        description="sent and failed emails are deleted this many days after they finished; "
        "0 = keep forever",
    )
    sms_retention_days: int = Field(
        90,
        ge=0,
        description="routed inbound SMS are deleted this many days after they were received; "
        "0 = keep forever",
    )
    dedup_retention_days: int = Field(
        30,
        ge=0,
        description="ids of taken-in events are remembered this long so a redelivery never "
        "notifies twice; keep it above the source topics' retention; 0 = keep forever",
    )
    retention_interval_seconds: float = Field(
        3600.0, gt=0, description="how often the retention job runs"
    )
    retention_batch_size: int = Field(
        1000, ge=1, le=100_000, description="rows deleted per transaction by the retention job"
    )

    sms_public_url: str = Field(
        "",
        description="public base URL the SMS provider calls (Twilio signs it); "
        "empty = the URL of the request as received",
    )
    sms_twilio_auth_token: SecretStr = Field(
        SecretStr(""), description="Twilio auth token; empty rejects Twilio webhooks"
    )
    sms_hmac_secret: SecretStr = Field(
        SecretStr(""), description="secret of the generic HMAC-SHA256 SMS scheme; empty rejects"
    )

    gateway_identity_secrets: SecretStr = Field(
        SecretStr(""),
        description="the gateway's identity_secrets (comma-separated, newest first): "
        "`POST /v1/sms/messages` and the customer SMS routes trust only requests whose "
        "signed X-Tollgate-* identity headers verify; empty refuses them all",
    )
    gateway_identity_max_skew_seconds: int = Field(
        30, ge=1, le=300, description="identity headers older or newer than this are refused"
    )
    sms_max_segments: int = Field(10, ge=1, le=50, description="longest outbound SMS accepted")
    sms_conversation_hours: float = Field(
        72.0,
        ge=0,
        description="after an org writes to a number, replies from it route to the org for "
        "this long (each message extends it); 0 = outbound messages open no conversation",
    )
    sms_provider_balance_poll_seconds: float = Field(
        300.0,
        ge=0,
        description="how often provider balances are checked against their "
        "`balance_alert_below` (an alert once per crossing); 0 = never",
    )
    sms_send_max_attempts: int = Field(
        6, ge=1, description="transient provider errors retried up to this many sends"
    )
    sms_send_concurrency: int = Field(16, ge=1, description="provider calls in flight")
    sms_send_poll_seconds: float = Field(
        1.0, gt=0, description="idle poll of the send queue (a new message wakes it at once)"
    )
    sms_send_lease_seconds: float = Field(
        30.0, gt=0, description="a claimed message not recorded by then is sent again"
    )
