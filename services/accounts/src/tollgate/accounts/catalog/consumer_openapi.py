"""The consumer's OpenAPI document of an API: what a customer needs to call it through the
gateway, built from the registry entry and the imported document (or, when none was
imported, from the registry's routes).

The upstream's own view never leaks: `servers` everywhere are replaced by the gateway's
public URL + `/{slug}`, the upstream's security schemes by the key schemes the gateway
accepts (header `X-API-Key`, `Authorization: Bearer`, `?api_key=`), header parameters that
carry credentials (the upstream's own or injected by the gateway) are removed, and so are
operations the gateway would refuse (no registered route: `route_not_allowed`) or that are
marked `x-internal`. Each operation states its price (`x-tollgate-price`, credits per
call) and limits (`x-tollgate-limits`) and says them in its description. An operation
whose route (or whole API) is deprecated is `deprecated: true` with its Sunset, the earlier
of the route's and the API's (the date the gateway sends), as `x-sunset` and in its
description; the registry decides, not the imported document. The result is
OpenAPI 3.1 (a 3.0 document's `nullable` and boolean exclusive bounds are converted).

Pure functions: no I/O; the input document is never modified.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from tollgate.accounts.apis.credentials import credential_header_names

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ANY_METHOD = ("get", "post", "put", "patch", "delete")
KEY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Your Tollgate API key (`tg_live_…` or `tg_test_…`).",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Your Tollgate API key as a bearer token.",
    },
    "apiKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "Your Tollgate API key in the query string (removed before forwarding).",
    },
}
WINDOWS = ("per_second", "per_minute", "per_hour", "per_day", "per_month")
WINDOW_WORDS = {
    "per_second": "second",
    "per_minute": "minute",
    "per_hour": "hour",
    "per_day": "day",
    "per_month": "30 days",
}
_PATH_PARAM = re.compile(r"\{([^}/]+)\}")


@dataclass(frozen=True)
class RouteFacts:
    """A registry route as the portal needs it."""

    method: str
    path_template: str
    price: int | None = None
    limits: dict[str, int] = field(default_factory=dict)
    required_scopes: list[str] = field(default_factory=list)
    operation_id: str | None = None
    deprecated: bool = False
    sunset_at: datetime | None = None


@dataclass(frozen=True)
class ApiFacts:
    """A registry entry as the portal needs it (never its credentials)."""

    slug: str
    name: str
    api_version: str
    status: str
    price: int
    upstream_url: str = ""
    sunset_at: datetime | None = None
    limits: dict[str, int] = field(default_factory=dict)
    routes: list[RouteFacts] = field(default_factory=list)
    upstream_header_names: list[str] = field(default_factory=list)


def limits_text(limits: dict[str, int]) -> str:
    """`10 per second, 1000 per day`, or `none` (English: the document is not localised)."""
    parts = [f"{limits[w]} per {WINDOW_WORDS[w]}" for w in WINDOWS if limits.get(w)]
    return ", ".join(parts) if parts else "none"


def route_for(api: ApiFacts, method: str, path: str) -> RouteFacts | None:
    """The registry route the gateway would match for this operation (exact template)."""
    for route in api.routes:
        if route.path_template == path and route.method in (method.upper(), "*"):
            return route
    return None


def consumer_document(
    api: ApiFacts, imported: dict[str, Any] | None, gateway_url: str
) -> dict[str, Any]:
    """The consumer's OpenAPI 3.1 document of `api` (see the module docstring)."""
    source = copy.deepcopy(imported) if imported is not None else _generated(api)
    doc = _as_31(source)
    server = gateway_url.rstrip("/") + "/" + api.slug
    credential_names = credential_header_names(api.upstream_header_names, source)
    info: dict[str, Any] = doc["info"] if isinstance(doc.get("info"), dict) else {}
    info.setdefault("title", api.name)
    info["version"] = str(info.get("version") or api.api_version)
    info["x-tollgate-status"] = api.status
    if api.sunset_at is not None:
        info["x-tollgate-sunset"] = api.sunset_at.isoformat()
    if api.status == "deprecated":
        sunset = f" Sunset: {api.sunset_at.date().isoformat()}." if api.sunset_at else ""
        note = f"**Deprecated.**{sunset}"
        info["description"] = _joined(note, info.get("description"))
    doc["info"] = info
    doc["servers"] = [{"url": server, "description": "Tollgate gateway"}]
    components: dict[str, Any] = (
        doc["components"] if isinstance(doc.get("components"), dict) else {}
    )
    components["securitySchemes"] = copy.deepcopy(KEY_SCHEMES)
    doc["components"] = components
    doc["security"] = [{name: []} for name in KEY_SCHEMES]
    doc["paths"] = _consumer_paths(api, doc.get("paths") or {}, credential_names)
    doc.pop("x-tollgate-upstream", None)
    return _without_upstream(doc, api.upstream_url, server)


def _joined(first: str, rest: Any) -> str:
    return f"{first}\n\n{rest}" if isinstance(rest, str) and rest else first


def _consumer_paths(
    api: ApiFacts, paths: dict[str, Any], credential_names: set[str]
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for path, item in paths.items():
        if not isinstance(item, dict) or item.get("x-internal") is True:
            continue
        item.pop("servers", None)
        item["parameters"] = _public_parameters(item.get("parameters"), credential_names)
        if not item["parameters"]:
            del item["parameters"]
        operations = 0
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            route = route_for(api, method, path)
            if operation.get("x-internal") is True or (api.routes and route is None):
                del item[method]
                continue
            _consumer_operation(api, operation, route, credential_names)
            operations += 1
        if operations:
            kept[path] = item
    return kept


def _consumer_operation(
    api: ApiFacts, operation: dict[str, Any], route: RouteFacts | None, credentials: set[str]
) -> None:
    price = api.price if route is None or route.price is None else route.price
    limits = route.limits if route is not None and route.limits else api.limits
    operation.pop("servers", None)
    operation.pop("security", None)  # the document's key schemes apply everywhere
    for name in ("callbacks",):
        operation.pop(name, None)
    parameters = _public_parameters(operation.get("parameters"), credentials)
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    operation["x-tollgate-price"] = price
    operation["x-tollgate-limits"] = dict(limits)
    facts = f"**Price:** {price} credits per call. **Limits:** {limits_text(limits)}."
    if route is not None and route.required_scopes:
        operation["x-tollgate-scopes"] = list(route.required_scopes)
        facts += f" **Key scopes:** {', '.join(route.required_scopes)}."
    operation["description"] = _joined(facts, operation.get("description"))
    _lifecycle(api, operation, route)
    responses = operation.get("responses")
    if not isinstance(responses, dict) or not responses:
        operation["responses"] = {"200": {"description": "The upstream's answer."}}


def _lifecycle(api: ApiFacts, operation: dict[str, Any], route: RouteFacts | None) -> None:
    """`deprecated` and `x-sunset` of an operation as the registry has them (Scalar and
    other viewers strike deprecated operations through)."""
    deprecated = api.status == "deprecated" or (route is not None and route.deprecated)
    sunsets = [d for d in (api.sunset_at, route.sunset_at if route else None) if d is not None]
    sunset = min(sunsets) if sunsets else None
    if sunset is not None:
        operation["x-sunset"] = sunset.isoformat()
    if deprecated:
        operation["deprecated"] = True
    elif route is not None:
        operation.pop("deprecated", None)  # an admin took the document's mark back
    if route is not None and (route.deprecated or route.sunset_at is not None):
        when = f" Sunset: {sunset.date().isoformat()}." if sunset is not None else ""
        note = "**Deprecated.**" if deprecated else "**Retiring.**"
        operation["description"] = _joined(f"{note}{when}", operation.get("description"))


def _public_parameters(parameters: Any, credentials: set[str]) -> list[Any]:
    if not isinstance(parameters, list):
        return []
    public = []
    for parameter in parameters:
        if (
            isinstance(parameter, dict)
            and parameter.get("in") in ("header", "cookie")
            and str(parameter.get("name", "")).lower() in credentials
        ):
            continue
        if (
            isinstance(parameter, dict)
            and parameter.get("in") == "query"
            and str(parameter.get("name", "")) == "api_key"
        ):
            continue  # the gateway's own query parameter
        public.append(parameter)
    return public


def _generated(api: ApiFacts) -> dict[str, Any]:
    """A document from the registry's routes (no imported document)."""
    paths: dict[str, Any] = {}
    for route in api.routes:
        item = paths.setdefault(route.path_template, {})
        names = _PATH_PARAM.findall(route.path_template)
        if names:
            item["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            ]
        methods = ANY_METHOD if route.method == "*" else (route.method.lower(),)
        for method in methods:
            if method not in METHODS:
                continue
            operation: dict[str, Any] = {
                "summary": f"{method.upper()} {route.path_template}",
                "responses": {"200": {"description": "The upstream's answer."}},
            }
            if route.operation_id and route.method != "*":
                operation["operationId"] = route.operation_id
            item[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": api.name, "version": api.api_version},
        "paths": paths,
    }


def _as_31(doc: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 document as 3.1 (schemas are JSON Schema 2020-12 there)."""
    version = str(doc.get("openapi", ""))
    doc["openapi"] = "3.1.0"
    if version.startswith("3.0"):
        _schemas_31(doc)
    return doc


def _schemas_31(node: Any) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("nullable") is True and isinstance(item.get("type"), str):
                item["type"] = [item["type"], "null"]
            if "nullable" in item and isinstance(item["nullable"], bool):
                del item["nullable"]
            for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
                if isinstance(item.get(bound), bool):
                    if item[bound] and limit in item:
                        item[bound] = item.pop(limit)
                    else:
                        del item[bound]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _without_upstream(doc: dict[str, Any], upstream_url: str, server: str) -> dict[str, Any]:
    """Every string mentioning the upstream's URL now names the gateway instead; other
    `servers` (links) are dropped."""
    parts = urlsplit(upstream_url) if upstream_url else None
    origin = f"{parts.scheme}://{parts.netloc}" if parts and parts.netloc else None
    upstream = upstream_url.rstrip("/") if origin else None

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: clean(v) for k, v in value.items() if not (k == "server" and isinstance(v, dict))
            }
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and upstream and origin:
            return value.replace(upstream, server).replace(origin, server)
        return value

    cleaned: dict[str, Any] = clean(doc)
    return cleaned
