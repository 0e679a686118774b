"""Request and response DTOs of `/v1/auth/*`.

Password fields are plain `str` bounded in size; problem responses never echo them
(the kit's validation handler drops submitted values).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tollgate.accounts.identity.passwords import MAX_PASSWORD_BYTES
from tollgate.kit.requests import RequestModel, StrictFlag

MIN_PASSWORD_CHARS = 10


NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_BYTES,
        description=f"at most {MAX_PASSWORD_BYTES} bytes of UTF-8 (422 `password-too-long`)",
    ),
]
Email = Annotated[
    str,
    Field(
        max_length=254,  # RFC 5321's longest deliverable path (as the notifier's contacts)
        pattern=r"^[^@\s\x00]+@[^@\s\x00]+$",
        json_schema_extra={"format": "email"},
        description="an address mail can be delivered to (special-use domains such as "
        "`.test` are refused with a 422 `invalid-email`)",
    ),
]
Locale = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]


class RegisterIn(RequestModel):
    email: Email
    password: NewPassword
    name: str = Field("", max_length=200)
    locale: Locale = "en"


class OrgRoleOut(BaseModel):
    org_id: uuid.UUID
    role: str


class UserOut(BaseModel):
    """A user as the user (or an admin) sees it; never the password hash or TOTP seed."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    locale: str
    is_admin: bool
    email_verified: bool = Field(
        description="false until the user opens the emailed verification link (or resets "
        "its password, or accepts an invitation); unverified users cannot create live API "
        "keys or invite people"
    )
    totp_enabled: bool
    created_at: datetime


class MeOut(UserOut):
    orgs: list[OrgRoleOut]


class AdminUserOut(UserOut):
    """A user as platform admins manage it."""

    is_active: bool = Field(description="false: deactivated, cannot sign in or refresh")


class TokenOut(BaseModel):
    """OAuth2 token response (RFC 6749 §5.1) plus the refresh token's lifetime."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshIn(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=200)
    everywhere: StrictFlag = Field(False, description="end every session of the user")


class PasswordResetIn(RequestModel):
    email: Email


class PasswordResetConfirmIn(RequestModel):
    token: str = Field(min_length=1, max_length=200)
    new_password: NewPassword


class EmailVerifyIn(RequestModel):
    token: str = Field(min_length=1, max_length=200, description="token from the emailed link")


class PasswordChangeIn(RequestModel):
    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_BYTES)
    new_password: NewPassword


class SessionOut(BaseModel):
    """One open session of the caller (a refresh-token family); never a token."""

    id: uuid.UUID = Field(description="Session id (the `sid` of its access tokens).")
    started_at: datetime = Field(description="When the session signed in.")
    last_refreshed_at: datetime = Field(description="When its tokens were last renewed.")
    expires_at: datetime = Field(description="When it ends unless renewed.")
    current: bool = Field(description="True for the session of the token making this call.")


class AcceptedOut(BaseModel):
    detail: str


class TotpEnrollOut(BaseModel):
    """Shown once: the seed and the URI to scan; 2FA is on after `verify`."""

    secret: str
    otpauth_uri: str


class TotpEnableIn(RequestModel):
    password: str = Field(
        min_length=1,
        max_length=MAX_PASSWORD_BYTES,
        description="the account's password: a token alone cannot turn two-factor on",
    )
    code: str = Field(min_length=6, max_length=8)


class TotpDisableIn(RequestModel):
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_BYTES)
    code: str = Field(min_length=6, max_length=20, description="TOTP or recovery code")


class RecoveryCodesOut(BaseModel):
    """Shown once; each code signs in once instead of a TOTP code."""

    recovery_codes: list[str]
