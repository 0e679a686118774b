"""Turning an OpenAPI 3.x document (JSON or YAML) into registry routes.

Each `paths` entry and HTTP method becomes a route with the same path template
(`/pets/{petId}`); OAuth2 scopes named in the operation's `security` become the
route's required scopes; `deprecated: true` deprecates the route. The document itself is
kept for the developer portal.
YAML is parsed safely and without aliases (no "billion laughs"); sizes are capped, and so
is nesting (`MAX_DEPTH` levels of objects and arrays, checked while YAML is composed and
before a JSON document is walked), so a crafted document is a 422, never a
RecursionError or a 500.
`servers` in the document are ignored: the upstream is what the admin registered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tollgate.accounts.scopes import MAX_ROUTE_SCOPES, SCOPE_PATTERN
from tollgate.accounts.storable import json_unstorable

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_ROUTES = 1000
_SCOPE = re.compile(SCOPE_PATTERN)
MAX_DEPTH = 64
"""Levels of nested objects and arrays, the document itself being the first; real
documents use about 15, and every reader (the portal, schema tools) recurses."""
MAX_NODES = 200_000
"""Values in a YAML document (pure-Python parsing costs time per node)."""

_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_NOT_IN_PATH = re.compile(r"[\x00-\x20\x7f-\x9f?#]")  # as `PathTemplate` of the routes API


class OpenApiInvalid(ValueError):
    """The document is not a usable OpenAPI 3.x document."""


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases, bounded in depth and size as it is composed (the
    composer recurses once per level: it must stop long before the interpreter does)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise OpenApiInvalid("YAML aliases are not supported")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise OpenApiInvalid(f"more than {MAX_NODES} values")
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise OpenApiInvalid(_TOO_DEEP)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _deeper_than(value: Any, limit: int) -> bool:
    """True when objects and arrays nest more than `limit` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True)
class ImportedRoute:
    method: str
    path_template: str
    operation_id: str | None
    required_scopes: list[str] = field(default_factory=list)
    deprecated: bool = False


def _with_json_keys(value: Any) -> Any:
    """`value` with mapping keys JSON has no form for (YAML dates, binary) as text;
    recursion is bounded by `MAX_DEPTH`, checked before."""
    if isinstance(value, dict):
        return {
            key if isinstance(key, str | int | float | bool) or key is None else str(key): (
                _with_json_keys(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_json_keys(item) for item in value]
    return value


def parse_document(raw: bytes) -> dict[str, Any]:
    """Parse JSON or YAML into a JSON-compatible dict."""
    text = raw.decode("utf-8", errors="strict") if raw else ""
    try:
        stripped = text.lstrip()
        if stripped.startswith("{"):
            doc = json.loads(text)
        else:
            doc = yaml.load(text, Loader=_NoAliasLoader)
        if _deeper_than(doc, MAX_DEPTH):
            raise OpenApiInvalid(_TOO_DEEP)
    except RecursionError as exc:  # json's C decoder stops at the interpreter's limit
        raise OpenApiInvalid(_TOO_DEEP) from exc
    except (ValueError, yaml.YAMLError) as exc:
        if isinstance(exc, OpenApiInvalid):
            raise
        raise OpenApiInvalid("not valid JSON or YAML") from exc
    # Round-trip through JSON: YAML dates and odd keys become plain JSON values, and
    # what jsonb cannot store (NaN, lone surrogates) is refused here.
    encoded = json.dumps(_with_json_keys(doc), default=str)
    doc = json.loads(encoded)
    unstorable = json_unstorable(doc)
    if unstorable is not None:
        raise OpenApiInvalid(unstorable)
    if "\\u0000" in encoded:
        raise OpenApiInvalid("NUL characters are not allowed")
    if not isinstance(doc, dict):
        raise OpenApiInvalid("the document must be an object")
    version = doc.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise OpenApiInvalid("only OpenAPI 3.x documents are supported (`openapi: 3.x`)")
    if not isinstance(doc.get("paths"), dict):
        raise OpenApiInvalid("the document has no `paths` object")
    return doc


def _scopes(requirements: Any, operation: str) -> list[str]:
    """The scopes `requirements` (an OpenAPI `security` list) name, checked as a route's
    own would be (a key could never hold another, and every route's scopes travel in
    the API's event)."""
    scopes: set[str] = set()
    if isinstance(requirements, list):
        for requirement in requirements:
            if isinstance(requirement, dict):
                for values in requirement.values():
                    if isinstance(values, list):
                        scopes.update(str(v) for v in values if isinstance(v, str))
    for scope in scopes:
        if not _SCOPE.fullmatch(scope):
            raise OpenApiInvalid(
                f"{operation}: the scope {scope[:100]!r} is not 1-64 of A-Z a-z 0-9 : . _ / * -"
            )
    if len(scopes) > MAX_ROUTE_SCOPES:
        raise OpenApiInvalid(f"{operation}: more than {MAX_ROUTE_SCOPES} scopes")
    return sorted(scopes)


def routes_of(doc: dict[str, Any]) -> list[ImportedRoute]:
    """The routes an OpenAPI document describes, in document order."""
    routes: list[ImportedRoute] = []
    global_security = doc.get("security")
    for path, item in doc["paths"].items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, dict):
            raise OpenApiInvalid(f"invalid path entry {str(path)[:100]!r}")
        if len(path) > 1024 or _NOT_IN_PATH.search(path):
            raise OpenApiInvalid(f"invalid path template {path[:100]!r}")
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            operation_id = operation.get("operationId")
            routes.append(
                ImportedRoute(
                    method=method.upper(),
                    path_template=path,
                    operation_id=str(operation_id)[:200] if operation_id else None,
                    required_scopes=_scopes(
                        operation.get("security", global_security), f"{method.upper()} {path}"
                    ),
                    deprecated=operation.get("deprecated") is True,
                )
            )
            if len(routes) > MAX_ROUTES:
                raise OpenApiInvalid(f"more than {MAX_ROUTES} operations")
    return routes
