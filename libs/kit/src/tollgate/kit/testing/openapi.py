"""Contract checks on a service's OpenAPI document, shared by every service's tests.

`problem_responses_without_slugs(document)` names each problem+json response that does
not list the slugs it may carry (`x-problem-types`); every service's tests assert it is
empty, so a client can branch on any error's `type` from the document alone.
"""

from __future__ import annotations

from typing import Any

from tollgate.kit.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES_KEY


def problem_responses_without_slugs(document: dict[str, Any]) -> list[str]:
    """`"METHOD /path status"` of every problem response without documented slugs."""
    missing: list[str] = []
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if PROBLEM_CONTENT_TYPE not in response.get("content", {}):
                    continue
                slugs = response.get(PROBLEM_TYPES_KEY)
                if not slugs or not all(isinstance(s, str) and s for s in slugs):
                    missing.append(f"{method.upper()} {path} {status}")
    return missing


def header_parameter(document: dict[str, Any], path: str, method: str, name: str) -> Any:
    """The header parameter `name` of an operation (None when undocumented)."""
    for parameter in document["paths"][path][method].get("parameters", []):
        if parameter.get("in") == "header" and parameter["name"].lower() == name.lower():
            return parameter
    return None
