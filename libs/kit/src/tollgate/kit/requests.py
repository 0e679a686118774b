"""The base of every service's request bodies: unknown fields are refused (422), and so is the
NUL character anywhere in it (PostgreSQL cannot store it in text or jsonb, and no
legitimate name, email, scope or header contains it).

Also the strict field types of amounts and flags (`StrictCredits`, `StrictFlag`): pydantic's
lax mode would read `"10"` and `true` as the integers 10 and 1, and `false` as a reserve
of 0; a body field of these types takes a JSON integer (boolean) or nothing. A JSON
number with a zero fraction (`10.0`) is an integer in JSON Schema's sense, which is
what the documents promise, so it is read as 10; `1.5` is refused.
And `json_too_deep`, the depth check `create_app` runs on every JSON request body
before anything parses it (`MAX_JSON_DEPTH`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    Strict,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

NUL_FREE = r"^[^\x00]*$"
"""`pattern=` of text query and path parameters: anything but the NUL character."""


def _json_integer(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a JSON integer")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""The validator behind `StrictCredits`. For an optional constrained field put the
constraints first, `Annotated[int, Field(ge=0), JSON_INTEGER] | None`: constraints
after a validator inside a union do not reach the JSON schema."""

StrictCredits = Annotated[int, Strict(), JSON_INTEGER]
"""A whole number in a request body (credits, thresholds, priorities): a JSON integer
(`10`, or `10.0`, which JSON Schema counts as one), never `"10"`, `true` or `1.5`."""

StrictFlag = Annotated[bool, Strict()]
"""A flag in a request body: JSON `true` or `false` only, never `1` or `"true"`."""

_RFC3339_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339_DATE.match(value):
        return value
    raise PydanticCustomError(
        "datetime_type", "Input should be an RFC 3339 date-time with an offset"
    )


def in_utc(value: datetime) -> datetime:
    """`value` in UTC (a naive time is taken as UTC); ValueError when that leaves the
    years 1..9999 (year 1 east of UTC, 9999 west of it), which no database column or
    driver takes."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range once converted to UTC") from exc


DateTimeText = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(in_utc)]
"""A time with an offset in a query, path or body, as the documents say (`format:
date-time`): RFC 3339 text, converted to UTC (a 422 when that leaves years 1..9999).
Pydantic alone would also read `"1700000000"` or `3.8e-175` as a unix time, which no
document promises."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON request body may have. No Tollgate body
needs more than a handful of levels; deeper input only serves to exhaust a parser's or
a validator's recursion (a 500)."""

# A JSON string (escapes included) or one bracket; strings are skipped whole so that
# brackets inside them do not count.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text `body` nests arrays/objects deeper than `limit`.

    Works on the raw bytes without parsing (so it cannot itself be exhausted) and in
    linear time; bodies with no more than `limit` brackets in all are passed at once.
    Invalid JSON is judged as far as its brackets go (the parser refuses it later).
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()[0]
        if token in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif token in b"]}":
            depth -= 1
    return False


def contains_nul(value: Any) -> bool:
    """True when a string anywhere inside `value` (keys included) has a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


def _nul_free_text(schema: Any) -> None:
    """Make every string schema in `schema` refuse NUL as the model does (in place):
    `NUL_FREE` as its pattern, or next to a pattern of its own that does not mention NUL."""
    if isinstance(schema, list):
        for item in schema:
            _nul_free_text(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and "enum" not in schema:
        own = schema.get("pattern")
        if own is None:
            schema["pattern"] = NUL_FREE
        elif "\\x00" not in own:  # a pattern of its own that may allow NUL: both apply
            schema.setdefault("allOf", []).append({"pattern": NUL_FREE})
    for key in ("properties", "patternProperties"):
        for sub in (schema.get(key) or {}).values():
            _nul_free_text(sub)
    for key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
        if key in schema:
            _nul_free_text(schema[key])


class RequestModel(BaseModel):
    """Strict request body: a NUL or an unknown field is a 422, never a failed insert.

    The document says so too: every text field gets `NUL_FREE` (beside a pattern of its
    own), so clients (and schema fuzzing) know the NUL is not a valid value."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        _nul_free_text(handler.resolve_ref_schema(json_schema))
        return json_schema

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if contains_nul(data):
            raise ValueError("NUL characters are not allowed")
        return data
