"""Settings of the console; every field can be set as `TOLLGATE_CONSOLE_<NAME>`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tollgate.kit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Console settings: where the backing services are and how sessions are sealed."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_CONSOLE_", extra="ignore")

    port: int = Field(8085, ge=1, le=65535, description="HTTP port")
    accounts_url: str = Field("http://127.0.0.1:8081", description="accounts base URL")
    usage_url: str = Field("http://127.0.0.1:8082", description="usage base URL")
    billing_url: str = Field("http://127.0.0.1:8083", description="billing base URL")
    notifier_url: str = Field("http://127.0.0.1:8084", description="notifier base URL")
    accounts_proxy_secret: str = Field(
        "",
        description="one of accounts' proxy_secrets, sent with every call to accounts so it "
        "believes the visitor addresses the console passes on (X-Forwarded-For): its per-IP "
        "throttles and audit records then count visitors, not the console",
    )
    gateway_url: str = Field(
        "http://127.0.0.1:8080", description="public gateway URL shown in examples"
    )
    portal_public: bool = Field(
        True,
        description="developer portal catalog and docs open to anonymous visitors (read from "
        "accounts' public catalog); false = sign-in first",
    )
    session_keys: str = Field(
        "",
        description="comma-separated Fernet keys, newest first, sealing the session cookie; "
        "empty = a random key per process (sessions end at restart; fine for one replica)",
    )
    cookie_secure: bool | None = Field(
        None, description="Secure cookies; unset = when the request came over https"
    )
    backend_timeout_seconds: float = Field(
        5.0, gt=0, description="per call to a backing service; slower = shown as unavailable"
    )
    live_streams_max: int = Field(
        50,
        ge=1,
        description="live-tail streams relayed at once by this process, on connections of "
        "their own (never the pages' pool); one more is refused (429)",
    )
    session_max_age_seconds: int = Field(
        30 * 86_400, ge=60, description="lifetime of the session cookie (refresh token's)"
    )
