"""OpenAPI links between billing operations: from a top-up or adjustment to its org's
balance and transactions, from the balance to the settings, from a settings change to
the settings and the balance. Clients (and the stateful schema fuzzing) follow them
with the org id the response carries. Documentation only: nothing here runs per request.
"""

from __future__ import annotations

from typing import Any

BALANCE = ("/v1/orgs/{org_id}/balance", "get")
SETTINGS = ("/v1/orgs/{org_id}/billing-settings", "get")
TRANSACTIONS = ("/v1/orgs/{org_id}/transactions", "get")


def _operation_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def to_org(description: str, **targets: tuple[str, str]) -> dict[str, Any]:
    """A documented answer whose links open `targets` (name -> (path, method)) for the
    org named by the answer's `org_id`."""
    return {
        "description": description,
        "links": {
            name: {
                "operationRef": _operation_ref(path, method),
                "parameters": {"org_id": "$response.body#/org_id"},
            }
            for name, (path, method) in targets.items()
        },
    }
