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
What Tollgate itself writes into the document (the key schemes, the gateway server,
prices, limits, scopes, deprecation notes) is in a `Language` (English or Simplified
Chinese, the portal's two); the operator's own text stays as imported.

Pure functions: no I/O; the input document is never modified.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from tollgate.accounts.apis.credentials import credential_header_names

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ANY_METHOD = ("get", "post", "put", "patch", "delete")


class Language(StrEnum):
    """The languages Tollgate writes a consumer document in (BCP 47 tags, as the
    console's)."""

    EN = "en"
    ZH_HANS = "zh-Hans"


@dataclass(frozen=True)
class _Texts:
    """What Tollgate writes into a consumer document, in one language."""

    key_header: str
    key_bearer: str
    key_query: str
    server: str
    facts: str  # {price}, {limits}
    credits: tuple[str, str]  # {n}: one credit, other counts
    scopes: str  # {scopes}
    deprecated: str
    retiring: str
    sunset: str  # {date}
    upstream_answer: str
    no_limits: str
    list_separator: str
    windows: dict[str, str]  # window -> "{n} per ..."


TEXTS: dict[Language, _Texts] = {
    Language.EN: _Texts(
        key_header="Your Tollgate API key (`tg_live_…` or `tg_test_…`).",
        key_bearer="Your Tollgate API key as a bearer token.",
        key_query="Your Tollgate API key in the query string (removed before forwarding).",
        server="Tollgate gateway",
        facts="**Price:** {price} per call. **Limits:** {limits}.",
        credits=("{n} credit", "{n} credits"),
        scopes=" **Key scopes:** {scopes}.",
        deprecated="**Deprecated.**",
        retiring="**Retiring.**",
        sunset=" Sunset: {date}.",
        upstream_answer="The upstream's answer.",
        no_limits="none",
        list_separator=", ",
        windows={
            "per_second": "{n} per second",
            "per_minute": "{n} per minute",
            "per_hour": "{n} per hour",
            "per_day": "{n} per day",
            "per_month": "{n} per 30 days",
        },
    ),
    Language.ZH_HANS: _Texts(
        key_header="您的 Tollgate API 密钥(`tg_live_…` 或 `tg_test_…`)。",
        key_bearer="以 Bearer 令牌传递的 Tollgate API 密钥。",
        key_query="放在查询字符串中的 Tollgate API 密钥(转发前会被移除)。",
        server="Tollgate 网关",
        facts="**价格:** 每次调用 {price}。**限额:** {limits}。",
        credits=("{n} 额度", "{n} 额度"),
        scopes=" **密钥权限范围:** {scopes}。",
        deprecated="**已弃用。**",
        retiring="**即将停用。**",
        sunset=" 停用日期:{date}。",
        upstream_answer="上游服务的应答。",
        no_limits="无",
        list_separator="、",
        windows={
            "per_second": "每秒 {n} 次",
            "per_minute": "每分钟 {n} 次",
            "per_hour": "每小时 {n} 次",
            "per_day": "每天 {n} 次",
            "per_month": "每 30 天 {n} 次",
        },
    ),
}
WINDOWS = ("per_second", "per_minute", "per_hour", "per_day", "per_month")


def key_schemes(language: Language = Language.EN) -> dict[str, dict[str, Any]]:
    """The key schemes the gateway accepts, described in `language`."""
    texts = TEXTS[language]
    return {
        "apiKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": texts.key_header,
        },
        "bearer": {"type": "http", "scheme": "bearer", "description": texts.key_bearer},
        "apiKeyQuery": {
            "type": "apiKey",
            "in": "query",
            "name": "api_key",
            "description": texts.key_query,
        },
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


def limits_text(limits: dict[str, int], language: Language = Language.EN) -> str:
    """`10 per second, 1000 per day`, or `none`, in `language`."""
    texts = TEXTS[language]
    parts = [texts.windows[w].format(n=limits[w]) for w in WINDOWS if limits.get(w)]
    return texts.list_separator.join(parts) if parts else texts.no_limits


def route_for(api: ApiFacts, method: str, path: str) -> RouteFacts | None:
    """The registry route the gateway would match for this operation (exact template)."""
    for route in api.routes:
        if route.path_template == path and route.method in (method.upper(), "*"):
            return route
    return None


def consumer_document(
    api: ApiFacts,
    imported: dict[str, Any] | None,
    gateway_url: str,
    language: Language = Language.EN,
) -> dict[str, Any]:
    """The consumer's OpenAPI 3.1 document of `api` (see the module docstring), with
    Tollgate's own text in `language`."""
    texts = TEXTS[language]
    source = copy.deepcopy(imported) if imported is not None else _generated(api, texts)
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
        sunset = texts.sunset.format(date=api.sunset_at.date().isoformat()) if api.sunset_at else ""
        note = f"{texts.deprecated}{sunset}"
        info["description"] = _joined(note, info.get("description"))
    doc["info"] = info
    doc["servers"] = [{"url": server, "description": texts.server}]
    components: dict[str, Any] = (
        doc["components"] if isinstance(doc.get("components"), dict) else {}
    )
    components["securitySchemes"] = schemes = key_schemes(language)
    doc["components"] = components
    doc["security"] = [{name: []} for name in schemes]
    doc["paths"] = _consumer_paths(api, doc.get("paths") or {}, credential_names, language)
    doc.pop("x-tollgate-upstream", None)
    return _without_upstream(doc, api.upstream_url, server)


def _joined(first: str, rest: Any) -> str:
    return f"{first}\n\n{rest}" if isinstance(rest, str) and rest else first


def _consumer_paths(
    api: ApiFacts, paths: dict[str, Any], credential_names: set[str], language: Language
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
            _consumer_operation(api, operation, route, credential_names, language)
            operations += 1
        if operations:
            kept[path] = item
    return kept


def _consumer_operation(
    api: ApiFacts,
    operation: dict[str, Any],
    route: RouteFacts | None,
    credentials: set[str],
    language: Language,
) -> None:
    texts = TEXTS[language]
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
    credits = texts.credits[0 if price == 1 else 1].format(n=price)
    facts = texts.facts.format(price=credits, limits=limits_text(limits, language))
    if route is not None and route.required_scopes:
        operation["x-tollgate-scopes"] = list(route.required_scopes)
        facts += texts.scopes.format(scopes=", ".join(route.required_scopes))
    operation["description"] = _joined(facts, operation.get("description"))
    _lifecycle(api, operation, route, texts)
    responses = operation.get("responses")
    if not isinstance(responses, dict) or not responses:
        operation["responses"] = {"200": {"description": texts.upstream_answer}}


def _lifecycle(
    api: ApiFacts, operation: dict[str, Any], route: RouteFacts | None, texts: _Texts
) -> None:
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
        when = texts.sunset.format(date=sunset.date().isoformat()) if sunset is not None else ""
        note = texts.deprecated if deprecated else texts.retiring
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


def _generated(api: ApiFacts, texts: _Texts) -> dict[str, Any]:
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
                "responses": {"200": {"description": texts.upstream_answer}},
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
