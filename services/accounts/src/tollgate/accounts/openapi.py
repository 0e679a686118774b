"""What every route documents besides its success: the problem+json error responses.

Documenting them lets schema-driven clients (and the schemathesis run in the test
suite) check error bodies too.
"""

from __future__ import annotations

from typing import Any

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: _problem("Bad request"),
    401: _problem("Not authenticated"),
    403: _problem("Not allowed"),
    404: _problem("Not found (or not visible to the caller)"),
    409: _problem("Conflict with the current state"),
    413: _problem("Request body too large"),
    422: _problem("Invalid request"),
    429: _problem("Too many attempts; see Retry-After"),
    503: _problem("Not available (configuration missing)"),
}
