"""The base of every service's request bodies: unknown fields are refused (422), and so is the
NUL character anywhere in it (PostgreSQL cannot store it in text or jsonb, and no
legitimate name, email, scope or header contains it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

NUL_FREE = r"^[^\x00]*$"
"""`pattern=` of text query and path parameters: anything but the NUL character."""


def contains_nul(value: Any) -> bool:
    """True when a string anywhere inside `value` (keys included) has a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


class RequestModel(BaseModel):
    """Strict request body: a NUL or an unknown field is a 422, never a failed insert."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if contains_nul(data):
            raise ValueError("NUL characters are not allowed")
        return data
