"""Request values checked against what PostgreSQL (and the JSON encoder in front of it)
can hold, so a caller's odd value is a 422 here and never a failed insert (a 500).

Times: an offset can push a valid time out of the years a UTC timestamp holds
(`9999-12-31T23:59:59-14:00` is year 10000 in UTC). Free-form JSON (key metadata,
OpenAPI documents): Python's JSON parser accepts `NaN`, `Infinity` and lone UTF-16
surrogates (`"\\ud800"`), none of which `jsonb` or UTF-8 text can store.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime

from tollgate.kit.requests import in_utc

UtcDatetime = Annotated[AwareDatetime, AfterValidator(in_utc)]
"""A time with an offset, converted to UTC (a 422 when that leaves years 1..9999)."""

UtcFilterDatetime = Annotated[datetime, AfterValidator(in_utc)]
"""A time filter in a query string: with an offset, or naive and taken as UTC."""


def json_unstorable(value: Any) -> str | None:
    """Why `value` (parsed JSON) cannot be stored as `jsonb`, or None when it can."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (a lone UTF-16 surrogate such as \\ud800 is not)"
    except ValueError:
        return "numbers must be finite (not NaN or Infinity)"
    except TypeError:
        return "only JSON values (objects, arrays, text, numbers, booleans, null)"
    return None


def storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """Pydantic validator form of `json_unstorable`."""
    reason = json_unstorable(value)
    if reason is not None:
        raise ValueError(reason)
    return value
