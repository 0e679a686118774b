"""An API's OpenAPI 3.x document, compiled once per API version for the request path.

`Contract.compile(document)` runs when an `ApiUpserted` arrives (replay or live), never
per request: it finds every operation, turns each OpenAPI schema into JSON Schema
2020-12 (`nullable`, boolean `exclusiveMinimum`/`exclusiveMaximum` of 3.0) and builds
one `jsonschema_rs` validator per parameter, request body and response body, with the
document's `components` beside each so `$ref`s resolve. What it cannot compile (a
broken `$ref`, an invalid schema) is left unchecked and logged once, never a 500.

Per request it answers, from memory only:

- `operation(method, path)`: the operation and its path parameters;
- `request_violations(...)`: every way a request breaks the document, each as
  `<JSON pointer>: <message>` with pointers into the request (`/method`, `/path/<name>`,
  `/query/<name>`, `/header/<name>`, `/body/...`);
- `response_violations(...)`: the same for an answer (contract drift).

No I/O; the validators are Rust (`jsonschema_rs`), so a check costs microseconds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs
import orjson

log = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{([^/{}]+)\}")
_MAX_VIOLATIONS = 50


def _pointer_token(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: object) -> str:
    """A JSON pointer (RFC 6901) from its tokens."""
    return "".join("/" + _pointer_token(t) for t in tokens)


def json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0/3.1 schema as JSON Schema 2020-12 (a new value; refs kept)."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name in ("nullable", "example", "discriminator", "xml", "externalDocs"):
            continue
        if name in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            continue  # 3.0 form: applied to minimum/maximum below
        if name in ("properties", "patternProperties", "$defs", "definitions"):
            out[name] = (
                {k: json_schema(v) for k, v in value.items()} if isinstance(value, dict) else value
            )
        elif name in ("enum", "const", "default", "examples", "required"):
            out[name] = value
        else:
            out[name] = json_schema(value)
    if schema.get("exclusiveMinimum") is True and "minimum" in out:
        out["exclusiveMinimum"] = out.pop("minimum")
    if schema.get("exclusiveMaximum") is True and "maximum" in out:
        out["exclusiveMaximum"] = out.pop("maximum")
    if schema.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


class Schema:
    """One compiled schema: validates an instance, lists violations with pointers."""

    __slots__ = ("raw", "validator")

    def __init__(self, raw: Any, components: Any) -> None:
        self.raw = raw
        wrapped = dict(json_schema(raw)) if isinstance(raw, dict) else {}
        if components:
            wrapped["components"] = components
        self.validator: Any = jsonschema_rs.Draft202012Validator(wrapped, validate_formats=True)

    def violations(self, instance: Any, *prefix: object) -> list[str]:
        """`<pointer>: <message>` for each violation (at most 50)."""
        if self.validator.is_valid(instance):  # the common case, without error objects
            return []
        found: list[str] = []
        for error in self.validator.iter_errors(instance):
            path = [*prefix, *error.instance_path]
            kind = error.kind
            if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
                # One violation per property that is not allowed, pointing at it.
                found.extend(
                    f"{pointer(*path, name)}: property {name!r} is not allowed"
                    for name in kind.unexpected
                )
                continue
            if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
                path.append(kind.property)
            found.append(f"{pointer(*path)}: {error.message}")
            if len(found) >= _MAX_VIOLATIONS:
                break
        return found


def _compile(raw: Any, components: Any, where: str) -> Schema | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Schema(raw, components)
    except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
        log.warning("schema left unchecked", extra={"where": where, "error": str(exc)[:200]})
        return None


class Parameter:
    """A path, query or header parameter."""

    __slots__ = ("array", "location", "name", "required", "scalar", "schema")

    def __init__(self, spec: dict[str, Any], components: Any, resolve: Any) -> None:
        self.name = str(spec.get("name", ""))
        self.location = str(spec.get("in", ""))
        self.required = bool(spec.get("required")) or self.location == "path"
        raw = resolve(spec.get("schema"))
        self.schema = _compile(raw, components, f"{self.location} {self.name}")
        kind = raw.get("type") if isinstance(raw, dict) else None
        self.array = kind == "array"
        items = resolve(raw.get("items")) if self.array and isinstance(raw, dict) else raw
        self.scalar = items.get("type") if isinstance(items, dict) else None

    def coerce(self, text: str) -> Any:
        """The text of a parameter as the type its schema names (left as text when it is
        not one: the validator then reports the type)."""
        kind = self.scalar
        try:
            if kind == "integer":
                return int(text)
            if kind == "number":
                number = float(text)
                return int(number) if number.is_integer() and "." not in text else number
        except ValueError:
            return text
        if kind == "boolean" and text in ("true", "false"):
            return text == "true"
        return text

    def value(self, texts: list[str]) -> Any:
        if self.array:
            items = texts if len(texts) > 1 else (texts[0].split(",") if texts[0] else [])
            return [self.coerce(t) for t in items]
        return self.coerce(texts[0])


class Response:
    """A documented answer: its media types, schemas and examples."""

    __slots__ = ("content", "schemas")

    def __init__(self, spec: dict[str, Any], components: Any, resolve: Any, where: str) -> None:
        content = spec.get("content")
        self.content: dict[str, dict[str, Any]] = (
            {str(t): m for t, m in content.items() if isinstance(m, dict)}
            if isinstance(content, dict)
            else {}
        )
        self.schemas: dict[str, Schema | None] = {
            media: _compile(resolve(m.get("schema")), components, f"{where} {media}")
            for media, m in self.content.items()
            if _is_json(media)
        }


def _is_json(media: str) -> bool:
    base = media.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


class Operation:
    """One method of one path: parameters, request body and responses, compiled."""

    __slots__ = (
        "_path_names",
        "body_required",
        "body_schemas",
        "id_type",
        "method",
        "operation_id",
        "params",
        "pattern",
        "responses",
        "template",
    )

    def __init__(
        self,
        method: str,
        template: str,
        spec: dict[str, Any],
        shared_params: list[Any],
        components: Any,
        resolve: Any,
    ) -> None:
        self.method = method
        self.template = template
        self.operation_id = spec.get("operationId")
        names = _PARAM.findall(template)
        parts = _PARAM.split(template)
        regex = ""
        for index, part in enumerate(parts):
            regex += re.escape(part) if index % 2 == 0 else f"(?P<p{index // 2}>[^/]+)"
        self.pattern = re.compile("^" + regex + "/?$")
        by_key: dict[tuple[str, str], Parameter] = {}
        for raw in [*shared_params, *(spec.get("parameters") or [])]:
            resolved = resolve(raw)
            if isinstance(resolved, dict) and resolved.get("in") in ("path", "query", "header"):
                parameter = Parameter(resolved, components, resolve)
                by_key[(parameter.location, parameter.name.lower())] = parameter
        for name in names:  # every template variable is a path parameter, declared or not
            by_key.setdefault(
                ("path", name.lower()), Parameter({"name": name, "in": "path"}, {}, resolve)
            )
        self.params = tuple(by_key.values())
        self._path_names = names
        body = resolve(spec.get("requestBody"))
        self.body_required = isinstance(body, dict) and bool(body.get("required"))
        content = body.get("content") if isinstance(body, dict) else None
        self.body_schemas: dict[str, Schema | None] = {}
        self.id_type: str | None = None  # of the body's `id` (the stateful mock's new ids)
        if isinstance(content, dict):
            for media, item in content.items():
                schema = resolve(item.get("schema")) if isinstance(item, dict) else None
                if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
                    id_schema = resolve(schema["properties"].get("id"))
                    if isinstance(id_schema, dict) and isinstance(id_schema.get("type"), str):
                        self.id_type = id_schema["type"]
                self.body_schemas[str(media).lower()] = (
                    _compile(schema, components, f"{method} {template} body")
                    if _is_json(str(media))
                    else None
                )
        responses = spec.get("responses")
        self.responses: dict[str, Response] = {}
        if isinstance(responses, dict):
            for code, item in responses.items():
                resolved = resolve(item)
                if isinstance(resolved, dict):
                    self.responses[str(code).upper()] = Response(
                        resolved, components, resolve, f"{method} {template} {code}"
                    )

    def path_values(self, match: re.Match[str]) -> dict[str, str]:
        return {name: match.group(f"p{i}") for i, name in enumerate(self._path_names)}

    def response_for(self, status: int) -> Response | None:
        """The documented answer for `status`: exact code, then `4XX`-style, then default."""
        code = str(status)
        return (
            self.responses.get(code)
            or self.responses.get(code[0] + "XX")
            or self.responses.get("DEFAULT")
        )

    def request_violations(
        self,
        path_values: Mapping[str, str],
        query: str,
        headers: Mapping[str, str],
        content_type: str | None,
        body: bytes,
        consumed: frozenset[tuple[str, str]] = frozenset(),
    ) -> list[str]:
        """Every way the request breaks the operation (empty: it conforms). `consumed`:
        the (location, lowercase name) of parameters the gateway takes for itself (the
        key's carriers): never forwarded, so neither checked nor missed."""
        found: list[str] = []
        query_values: dict[str, list[str]] = {}
        if query:
            for name, value in parse_qsl(query, keep_blank_values=True):
                query_values.setdefault(name, []).append(value)
        for param in self.params:
            if consumed and (param.location, param.name.lower()) in consumed:
                continue
            texts: list[str] | None
            if param.location == "path":
                text = path_values.get(param.name)
                texts = [text] if text is not None else None
            elif param.location == "query":
                texts = query_values.get(param.name)
            else:
                getall = getattr(headers, "getall", None)
                texts = list(getall(param.name, ())) if getall else None
                if texts is None:
                    single = headers.get(param.name)
                    texts = [single] if single is not None else None
                texts = texts or None
            where = (
                ("header", param.name.lower())
                if param.location == "header"
                else (
                    param.location,
                    param.name,
                )
            )
            if texts is None:
                if param.required:
                    found.append(
                        f"{pointer(*where)}: required {param.location} parameter is missing"
                    )
                continue
            if param.schema is not None:
                found.extend(param.schema.violations(param.value(texts), *where))
        if self.body_schemas or self.body_required:
            found.extend(self._body_violations(content_type, body))
        return found[:_MAX_VIOLATIONS]

    def _body_violations(self, content_type: str | None, body: bytes) -> list[str]:
        if not body:
            return ["/body: a request body is required"] if self.body_required else []
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if self.body_schemas and media not in self.body_schemas:
            wildcard = media.split("/", 1)[0] + "/*"
            if wildcard not in self.body_schemas and "*/*" not in self.body_schemas:
                return [
                    f"/header/content-type: {media or 'no content type'} is not one of "
                    + ", ".join(sorted(self.body_schemas))
                ]
        schema = self.body_schemas.get(media)
        if schema is None or not _is_json(media):
            return []
        try:
            instance = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ["/body: the body is not valid JSON"]
        return schema.violations(instance, "body")

    def response_violations(self, status: int, content_type: str | None, body: bytes) -> list[str]:
        """Every way an answer breaks the document (status undocumented, wrong media
        type, body against the schema); empty when it conforms."""
        response = self.response_for(status)
        if response is None:
            return [f"/status: {status} is not a documented response"]
        if not response.content:
            return []
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media not in response.content:
            if not body:
                return []
            return [f"/header/content-type: {media or 'none'} is not documented for {status}"]
        schema = response.schemas.get(media)
        if schema is None:
            return []
        try:
            instance = orjson.loads(body)
        except orjson.JSONDecodeError:
            return ["/body: the body is not valid JSON"]
        return schema.violations(instance, "body")


class Contract:
    """The compiled operations of one document; `operation()` finds one per request."""

    __slots__ = ("document", "operations")

    def __init__(self, document: dict[str, Any], operations: tuple[Operation, ...]) -> None:
        self.document = document
        self.operations = operations

    @classmethod
    def compile(cls, document: dict[str, Any]) -> Contract:
        components = json_schema(document.get("components") or {})

        def resolve(value: Any, depth: int = 0) -> Any:
            while isinstance(value, dict) and isinstance(value.get("$ref"), str) and depth < 32:
                value = resolve_ref(document, value["$ref"])
                depth += 1
            return value

        operations: list[Operation] = []
        paths = document.get("paths")
        if isinstance(paths, dict):
            # Literal templates before templated ones: `/pets/mine` wins over `/pets/{id}`.
            ordered = sorted(paths.items(), key=lambda item: str(item[0]).count("{"))
            for template, item in ordered:
                item = resolve(item)
                if not isinstance(template, str) or not isinstance(item, dict):
                    continue
                shared: list[Any] = (
                    item["parameters"] if isinstance(item.get("parameters"), list) else []
                )
                for method in METHODS:
                    spec = item.get(method)
                    if isinstance(spec, dict):
                        operations.append(
                            Operation(method.upper(), template, spec, shared, components, resolve)
                        )
        return cls(document, tuple(operations))

    def operation(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """The operation for `method` and `path`, its path values, and whether any
        operation has this path (to tell an unknown path from a wrong method)."""
        path_known = False
        lookup = "GET" if method == "HEAD" else method
        for operation in self.operations:
            match = operation.pattern.match(path)
            if match is None:
                continue
            path_known = True
            if operation.method == method or operation.method == lookup:
                return operation, operation.path_values(match), True
        return None, {}, path_known


def resolve_ref(document: Any, ref: str) -> Any:
    """The value a local `$ref` (`#/components/...`) points to; None when it does not."""
    if not ref.startswith("#"):
        return None
    node = document
    for token in ref[1:].lstrip("/").split("/") if ref != "#" else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node
