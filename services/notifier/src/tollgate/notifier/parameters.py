"""Types of the notifier API's path, query and body values that reach PostgreSQL.

Whatever a caller sends must be refused with a 422 here, never fail in the database
with a 500: text has no NUL (`tollgate.kit.requests.NUL_FREE`) and ids fit a BIGINT
(times are `tollgate.kit.requests.DateTimeText`, converted to UTC or refused).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from tollgate.kit.db import BIGINT_MAX
from tollgate.kit.requests import NUL_FREE

DeliveryId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
"""A webhook delivery id (BIGINT identity)."""

PhoneNumber = Annotated[
    str | None, Query(min_length=1, max_length=32, pattern=NUL_FREE, description="Sender number.")
]
"""A sender number filter (numbers are stored as the provider sent them, up to 32 chars)."""
