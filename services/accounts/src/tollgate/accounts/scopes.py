"""The scope type shared by keys (the scopes a key holds) and APIs (the scopes a route
requires); its own module so that neither subpackage imports the other for it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

SCOPE_PATTERN = r"^[A-Za-z0-9:._/*-]{1,64}$"
MAX_ROUTE_SCOPES = 50
"""The most scopes one route may require."""

Scope = Annotated[str, Field(pattern=SCOPE_PATTERN)]
