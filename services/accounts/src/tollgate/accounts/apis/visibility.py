"""Which registry routes org members may see: not those of operations the imported
OpenAPI document marks `x-internal` (on the operation or on its path item), the rule of
the consumer document (`catalog.consumer_openapi`), so `/v1/apis` does not show members
what the catalog hides from them. Admins see every route. Pure; no I/O."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from tollgate.accounts.apis.openapi_import import METHODS


class RouteLike(Protocol):
    """What the rule reads of a route."""

    method: str
    path_template: str


def internal(document: dict[str, Any] | None, route: RouteLike) -> bool:
    """True when `document` marks the operation of `route` internal. A `*` route is
    internal when its path item is, or when every operation under it is."""
    paths = document.get("paths") if isinstance(document, dict) else None
    item = paths.get(route.path_template) if isinstance(paths, dict) else None
    if not isinstance(item, dict):
        return False
    if item.get("x-internal") is True:
        return True
    if route.method == "*":
        operations = [item[m] for m in METHODS if isinstance(item.get(m), dict)]
        return bool(operations) and all(op.get("x-internal") is True for op in operations)
    operation = item.get(route.method.lower())
    return isinstance(operation, dict) and operation.get("x-internal") is True


R = TypeVar("R", bound=RouteLike)


def visible_routes(document: dict[str, Any] | None, routes: list[R], *, admin: bool) -> list[R]:
    """`routes` as the caller may see them: all for admins, the public ones otherwise."""
    if admin:
        return routes
    return [route for route in routes if not internal(document, route)]
