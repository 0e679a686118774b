"""What changed between two OpenAPI documents of one API: operations added, removed
or changed, and which changes break existing callers.

Breaking rules (`BreakingRule`):

- removed operation: a method + path the older document had is gone (path parameter
  names do not matter: `/pets/{id}` and `/pets/{petId}` are the same operation);
- new required parameter: a query, header or cookie parameter that is required now
  and was absent or optional before (a new path parameter changes the path, so it
  shows as a removed and an added operation); a request body that became required; a
  body property that became required (inside a new object, only the object counts);
- narrowed type: a parameter or request body property accepts less than before
  (`number` to `integer`, another type, enum values removed or an enum added, a
  `format` added to or changed on a string);
- removed response field: a property of a 2xx JSON response schema is gone.

Which changes customers may see (`public_changes`) is decided here too, at import time,
against the documents and routes each change came from: the previous document is not
kept, so nothing later could tell whether a removed operation was internal.

Pure: no I/O, no clock, never raises on a malformed document (what cannot be read is
compared as it is). Local `$ref`s (`#/...`) are followed; cycles and very large
expansions stop resolving rather than growing without bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tollgate.contracts.events.accounts import ApiChange, ApiChangeKind, BreakingRule

Route = tuple[str, str]
"""A registry route as the gateway matches it: (METHOD or `*`, exact path template)."""

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{[^}/]*\}")
_RESOLVE_BUDGET = 20_000  # nodes per resolved operation; a hostile document stops here
_MAX_DEPTH = 32


@dataclass(frozen=True)
class _Operation:
    method: str
    path: str
    body: dict[str, Any]  # the operation with path-level parameters merged, refs resolved


class _Resolver:
    """Follows local `$ref`s of one document, within a node budget."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self._doc = doc
        self._budget = _RESOLVE_BUDGET

    def target(self, ref: str) -> Any:
        node: Any = self._doc
        for part in ref.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def resolve(self, node: Any, seen: frozenset[str] = frozenset()) -> Any:
        self._budget -= 1
        if self._budget <= 0 or len(seen) > _MAX_DEPTH:
            return node
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
                found = self.target(ref)
                if found is not None:
                    return self.resolve(found, seen | {ref})
            return {k: self.resolve(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [self.resolve(v, seen) for v in node]
        return node


def _key(method: str, path: str) -> tuple[str, str]:
    return method.upper(), _PARAM.sub("{}", path)


def _operations(doc: dict[str, Any] | None) -> dict[tuple[str, str], _Operation]:
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        return {}
    found: dict[tuple[str, str], _Operation] = {}
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") if isinstance(item.get("parameters"), list) else []
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            resolver = _Resolver(doc)
            body = resolver.resolve(op)
            body["parameters"] = _merged_parameters(
                resolver.resolve(shared), body.get("parameters")
            )
            found[_key(method, str(path))] = _Operation(method.upper(), str(path), body)
    return found


def _merged_parameters(shared: Any, own: Any) -> list[dict[str, Any]]:
    """Path-level parameters overridden by the operation's own (same `in` and name)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for params in (shared, own):
        for param in params if isinstance(params, list) else []:
            if isinstance(param, dict):
                merged[(str(param.get("in")), str(param.get("name")))] = param
    return list(merged.values())


def _parameters(op: _Operation) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(p.get("in")), str(p.get("name"))): p for p in op.body["parameters"]}


def _is_required(param: dict[str, Any]) -> bool:
    return param.get("in") == "path" or param.get("required") is True


def _json_schema(content: Any) -> dict[str, Any] | None:
    """The schema of the JSON media type of a `content` map (else the first one)."""
    if not isinstance(content, dict) or not content:
        return None
    media = next(
        (v for k, v in content.items() if "json" in str(k).lower()), next(iter(content.values()))
    )
    schema = media.get("schema") if isinstance(media, dict) else None
    return schema if isinstance(schema, dict) else None


def _object_parts(schema: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Properties and required names of an object schema, `allOf` parts merged."""
    properties: dict[str, Any] = {}
    required: set[str] = set()
    for part in [schema, *(p for p in schema.get("allOf") or [] if isinstance(p, dict))]:
        if isinstance(part.get("properties"), dict):
            properties.update(part["properties"])
        if isinstance(part.get("required"), list):
            required.update(str(name) for name in part["required"])
    return properties, required


def _fields(schema: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (dotted path, schema) below an object or array schema; `[]` marks items."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return
    if isinstance(schema.get("items"), dict):
        yield from _fields(schema["items"], f"{prefix}[]", depth + 1)
    properties, _ = _object_parts(schema)
    for name, sub in properties.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(sub, dict):
            yield path, sub
            yield from _fields(sub, path, depth + 1)


def _required_fields(schema: Any, prefix: str = "", depth: int = 0) -> set[str]:
    """Dotted paths of the required properties (nested objects included)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return set()
    found: set[str] = set()
    if isinstance(schema.get("items"), dict):
        found |= _required_fields(schema["items"], f"{prefix}[]", depth + 1)
    properties, required = _object_parts(schema)
    for name in required:
        found.add(f"{prefix}.{name}" if prefix else name)
    for name, sub in properties.items():
        found |= _required_fields(sub, f"{prefix}.{name}" if prefix else str(name), depth + 1)
    return found


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    kinds = {declared} if isinstance(declared, str) else set(map(str, declared or []))
    if schema.get("nullable") is True:  # OpenAPI 3.0
        kinds.add("null")
    if "number" in kinds:
        kinds.add("integer")
    return kinds


def _describe_types(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    kinds = [declared] if isinstance(declared, str) else [str(t) for t in declared or []]
    if schema.get("nullable") is True:
        kinds.append("null")
    return " | ".join(kinds)


def _with_format(schema: dict[str, Any]) -> str:
    kind = _describe_types(schema)
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if isinstance(fmt, str) else kind


def _enum(schema: dict[str, Any]) -> list[Any] | None:
    values = schema.get("enum")
    return values if isinstance(values, list) else None


def _narrowing(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, str] | None:
    """(before, after) when `new` accepts fewer values than `old`, else None."""
    old_types, new_types = _types(old), _types(new)
    if old_types and new_types and old_types - new_types:
        return _describe_types(old), _describe_types(new)
    old_enum, new_enum = _enum(old), _enum(new)
    if new_enum is not None and (
        old_enum is None or any(value not in new_enum for value in old_enum)
    ):
        before = ", ".join(map(str, old_enum)) if old_enum is not None else _describe_types(old)
        return before, ", ".join(map(str, new_enum))
    old_format, new_format = old.get("format"), new.get("format")
    if "string" in new_types and isinstance(new_format, str) and new_format != old_format:
        return _with_format(old), _with_format(new)
    return None


def _narrowed_parameters(old: _Operation, new: _Operation) -> Iterator[ApiChange]:
    before = _parameters(old)
    for key, param in _parameters(new).items():
        previous = before.get(key)
        old_schema = previous.get("schema") if previous else None
        new_schema = param.get("schema")
        if isinstance(old_schema, dict) and isinstance(new_schema, dict):
            narrowed = _narrowing(old_schema, new_schema)
            if narrowed:
                yield _breaking(new, BreakingRule.NARROWED_TYPE, key[0], key[1], narrowed)


def _request_schema(op: _Operation) -> dict[str, Any] | None:
    body = op.body.get("requestBody")
    return _json_schema(body.get("content")) if isinstance(body, dict) else None


def _body_required(op: _Operation) -> bool:
    body = op.body.get("requestBody")
    return isinstance(body, dict) and body.get("required") is True


def _breaking(
    op: _Operation,
    rule: BreakingRule,
    location: str | None = None,
    name: str | None = None,
    before_after: tuple[str, str] | None = None,
    status: str | None = None,
) -> ApiChange:
    before, after = before_after or (None, None)
    return ApiChange(
        kind=ApiChangeKind.CHANGED,
        method=op.method,
        path=op.path,
        rule=rule,
        location=location,
        name=name,
        status=status,
        before=before,
        after=after,
    )


def _new_required(old: _Operation, new: _Operation) -> Iterator[ApiChange]:
    before = _parameters(old)
    for key, param in _parameters(new).items():
        if key[0] == "path":  # a new path parameter makes a new path: another operation
            continue
        if _is_required(param) and not (key in before and _is_required(before[key])):
            yield _breaking(new, BreakingRule.NEW_REQUIRED_PARAMETER, key[0], key[1])
    if _body_required(new) and not _body_required(old):
        yield _breaking(new, BreakingRule.NEW_REQUIRED_PARAMETER, "body")
    old_schema, new_schema = _request_schema(old), _request_schema(new)
    if new_schema is not None:
        previously = _required_fields(old_schema)
        sent_before = {name for name, _ in _fields(old_schema)}
        for name in sorted(_required_fields(new_schema) - previously):
            # Inside a new object only the object itself counts (its own rule, once).
            parent = name.rpartition(".")[0].removesuffix("[]")
            if not parent or parent in sent_before:
                yield _breaking(new, BreakingRule.NEW_REQUIRED_PARAMETER, "body", name)


def _narrowed_body(old: _Operation, new: _Operation) -> Iterator[ApiChange]:
    old_fields = dict(_fields(_request_schema(old)))
    for name, schema in _fields(_request_schema(new)):
        if name in old_fields:
            narrowed = _narrowing(old_fields[name], schema)
            if narrowed:
                yield _breaking(new, BreakingRule.NARROWED_TYPE, "body", name, narrowed)


def _success_schemas(op: _Operation) -> dict[str, dict[str, Any]]:
    responses = op.body.get("responses")
    if not isinstance(responses, dict):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for status, response in responses.items():
        if str(status).startswith("2") and isinstance(response, dict):
            schema = _json_schema(response.get("content"))
            if schema is not None:
                found[str(status)] = schema
    return found


def _removed_response_fields(old: _Operation, new: _Operation) -> Iterator[ApiChange]:
    now = _success_schemas(new)
    for status, schema in _success_schemas(old).items():
        if status not in now:
            continue
        kept = {name for name, _ in _fields(now[status])}
        for name, _ in _fields(schema):
            if name not in kept:
                yield _breaking(
                    new, BreakingRule.REMOVED_RESPONSE_FIELD, "response", name, status=status
                )


def _operation_changes(old: _Operation, new: _Operation) -> list[ApiChange]:
    breaking = [
        *_new_required(old, new),
        *_narrowed_parameters(old, new),
        *_narrowed_body(old, new),
        *_removed_response_fields(old, new),
    ]
    if breaking:
        return breaking
    if old.body != new.body or old.path != new.path:
        return [ApiChange(kind=ApiChangeKind.CHANGED, method=new.method, path=new.path)]
    return []


def changes_between(old: dict[str, Any] | None, new: dict[str, Any]) -> list[ApiChange]:
    """Every operation change from `old` (None: nothing imported before) to `new`,
    breaking changes first, then by path and method."""
    before, after = _operations(old), _operations(new)
    changes: list[ApiChange] = []
    for key, op in before.items():
        if key not in after:
            changes.append(
                ApiChange(
                    kind=ApiChangeKind.REMOVED,
                    method=op.method,
                    path=op.path,
                    rule=BreakingRule.REMOVED_OPERATION,
                )
            )
    for key, op in after.items():
        if key not in before:
            changes.append(ApiChange(kind=ApiChangeKind.ADDED, method=op.method, path=op.path))
        else:
            changes.extend(_operation_changes(before[key], op))
    return sorted(changes, key=lambda c: (not c.breaking, c.path, c.method))


@dataclass(frozen=True)
class Published:
    """One side of an import as customers could call it: the OpenAPI document and the
    registry routes the gateway matched against it (before the import, or after it)."""

    document: dict[str, Any] | None
    routes: frozenset[Route]


def callable_operations(side: Published) -> frozenset[tuple[str, str]]:
    """(METHOD, path with `{}` for each parameter) of every operation the consumer document
    of `side` keeps (the rule of `catalog.consumer_openapi`): neither it nor its path item
    marked `x-internal`, and a route the gateway would match (every operation when there
    is no route at all). Two spellings of one operation (`/a/{id}`, `/a/{key}`): callable
    only if both are."""
    doc = side.document
    paths = doc.get("paths") if isinstance(doc, dict) else None
    found: set[tuple[str, str]] = set()
    hidden: set[tuple[str, str]] = set()
    for path, item in paths.items() if isinstance(paths, dict) else ():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            internal = item.get("x-internal") is True or operation.get("x-internal") is True
            routed = {(method.upper(), str(path)), ("*", str(path))} & side.routes
            calls = not internal and bool(routed or not side.routes)
            (found if calls else hidden).add(_key(method, str(path)))
    return frozenset(found - hidden)


def public_changes(
    changes: list[ApiChange],
    before: Published,
    after: Published,
    credential_headers: frozenset[str],
) -> list[ApiChange]:
    """The changes customers may see, in their order: an added operation callable in the
    new document, a removed one callable in the old, a changed one callable in both (its
    details compare with the old shape), and never a change naming a credential header
    (`credential_headers`, lower case)."""
    callable_before, callable_after = callable_operations(before), callable_operations(after)
    shown = []
    for change in changes:
        if change.location == "header" and (change.name or "").lower() in credential_headers:
            continue
        sides = {
            ApiChangeKind.ADDED: (callable_after,),
            ApiChangeKind.REMOVED: (callable_before,),
            ApiChangeKind.CHANGED: (callable_before, callable_after),
        }[change.kind]
        if all(_key(change.method, change.path) in side for side in sides):
            shown.append(change)
    return shown
