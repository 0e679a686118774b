"""One audit trail: every service's state-changing calls, recorded through its outbox.

`AuditTrail` is an ASGI middleware `create_app` installs in every HTTP service but
accounts (which writes its own audit log in the transaction of each change): for
each `POST`, `PUT`, `PATCH` or `DELETE` that a signed-in caller made and the service
answered with a 2xx, it writes one `AuditRecorded` event to the service's outbox
before the answer leaves (a success is held until its body is complete), so the caller
never sees a success that left no trace.
Accounts consumes the topic into its audit log (idempotent on the event id) and
serves it at `/v1/audit`. No route has to do anything to be audited; what a record
says is taken from the route:

- `action`: `<service>.<endpoint function>`, e.g. `billing.top_up`;
- `org_id`: the `{org_id}` path parameter, else `?org_id=`, else `org_id` in the body;
- `target_type`/`target_id`: the last `{<thing>_id}` path parameter other than
  `org_id` (`endpoint`, `<uuid>`), else what the call created (the answer's `id`,
  named after the path's last segment: `POST …/endpoints` -> `endpoint`), else the
  org itself; nothing else of an answer is read (it may reveal a secret once);
- `diff`: the JSON body the caller sent (the fields it asked to change), with every
  value under a secret-like name and every secret-looking string masked (`***`);
  the route's own `{…}` parameters; and for a route that takes `RecordedChange`
  (every `PUT`/`PATCH`, and other calls that change a stored object), `before` and
  `after`: the stored values of the fields the call changed, as the route noted them
  (`AuditChange.note`), masked the same way. A body says what was asked; before/after
  say what changed (a PATCH that sets a field to its current value changes nothing);
- `actor_id` (the caller), `ip` (the TCP peer), `request_id` (`X-Request-ID`).

Exempt, by rule and listed by `audit_coverage`: calls without a signed-in user
(provider callbacks such as inbound SMS, signed and deduplicated by their own service;
calls an API key makes through the gateway, which are in the request log): no user to
attribute them to, and their bodies are third parties' messages, not changes an
operator made.

The record is written in its own transaction right after the change committed: a
crash in between (milliseconds) loses the record, never the change; the answer waits
for the record, so a client that saw success can find it.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollgate.contracts.events.audit import AuditRecorded
from tollgate.kit.auth import Principal
from tollgate.kit.db import SessionMaker
from tollgate.kit.logs import request_id_var
from tollgate.kit.outbox import emit

log = logging.getLogger(__name__)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MASK = "***"
MAX_DIFF_BYTES = 8 * 1024
MAX_ANSWER_BYTES = 64 * 1024
"""Answers up to this size are searched for the `id` of what a call created."""
PRINCIPAL_STATE_KEY = "principal"
"""`request.state` entry where `CurrentPrincipal` leaves the verified caller."""
CHANGE_STATE_KEY = "audit_change"
"""`request.state` entry where `RecordedChange` leaves the route's `AuditChange`."""

_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|api_?key|credential|authorization|signature|private|seed",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"^(whsec_|tg_live_|tg_test_|sk_live_|sk_test_|Bearer\s)")
_TARGET_PARAM = re.compile(r"^(?P<kind>[a-z_]+)_id$")

AUDIT_RECORDS_WRITTEN = Counter(
    "tollgate_audit_records_written_total", "audit records written to the outbox", ["outcome"]
)


def mask_secrets(value: Any, *, name: str = "") -> Any:
    """`value` with every value under a secret-like key, and every string that looks
    like a secret (webhook secrets, API keys, bearer tokens), replaced by `***`."""
    if name and _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, name=str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, name=name) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.match(value):
        return MASK
    return value


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`{"before": {…}, "after": {…}}` of the fields whose values differ between the two
    snapshots (JSON-ready: times as ISO 8601, ids as strings), secrets masked; `{}` when
    nothing changed. A field missing on one side counts as null there."""
    old, new = _jsonable(dict(before)), _jsonable(dict(after))
    names = sorted(set(old) | set(new))
    changed = [name for name in names if old.get(name) != new.get(name)]
    if not changed:
        return {}
    return {
        "before": mask_secrets({name: old.get(name) for name in changed}),
        "after": mask_secrets({name: new.get(name) for name in changed}),
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)  # UUIDs, decimals


class AuditChange:
    """The before/after of what one call changed, filled in by its route through
    `note`, read by `AuditTrail` when it writes the call's record."""

    def __init__(self) -> None:
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}

    def note(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Keep the fields that differ between the stored object before and after the
        change (call it once per object, or once with both snapshots merged)."""
        changed = changed_fields(before, after)
        self.before.update(changed.get("before", {}))
        self.after.update(changed.get("after", {}))


async def _recorded_change(request: Request) -> AuditChange:
    change = AuditChange()
    setattr(request.state, CHANGE_STATE_KEY, change)
    return change


RecordedChange = Annotated[AuditChange, Depends(_recorded_change)]
"""FastAPI dependency: where a state-changing route notes the before/after of the
fields it changed, for its audit record."""


def exemption(route: APIRoute) -> str | None:
    """Why a state-changing route is not audited, or None when it is."""
    if not _needs_principal(route):
        return (
            "no signed-in user: provider callbacks, and API-key calls through the gateway "
            "(those are in the request log)"
        )
    return None


def audit_coverage(app: FastAPI) -> dict[str, str | None]:
    """Every state-changing route of `app` (`METHOD /path`) with its exemption reason
    (None: each successful call writes an audit record)."""
    coverage: dict[str, str | None] = {}
    for path, route in api_routes(app):
        for method in sorted((route.methods or set()) & STATE_CHANGING):
            coverage[f"{method} {path}"] = exemption(route)
    return coverage


def api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """Every API route of `app` with its full path (prefixes of included routers too:
    FastAPI keeps included routers as their own nodes, each route under its own path)."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                if isinstance(context.original_route, APIRoute):
                    yield context.path, context.original_route
        elif isinstance(route, APIRoute):
            yield route.path, route


def records_change(route: APIRoute) -> bool:
    """Whether the route notes the before/after of what it changes (`RecordedChange`)."""
    return _depends_on(route, _recorded_change.__name__)


def _needs_principal(route: APIRoute) -> bool:
    return _depends_on(route, "_current_principal")


def _depends_on(route: APIRoute, name: str) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if getattr(dependency.call, "__name__", "") == name:
            return True
        stack.extend(dependency.dependencies)
    return False


class AuditTrail:
    """Writes an `AuditRecorded` for every successful state-changing call (see module)."""

    def __init__(self, app: ASGIApp, *, service: str, fastapi_app: FastAPI) -> None:
        self.app = app
        self.service = service
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        body: list[bytes] = []

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        held: list[Message] = []
        answer = bytearray()

        async def send_after_record(message: Message) -> None:
            # A success is held until its body is complete (the id of what a POST
            # created is in it), then recorded, then sent.
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                held.append(message)
                return
            if not held or message["type"] != "http.response.body":
                await send(message)
                return
            held.append(message)
            if len(answer) <= MAX_ANSWER_BYTES:
                answer.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            created = _created_id(bytes(answer)) if len(answer) <= MAX_ANSWER_BYTES else None
            await self._record(scope, b"".join(body), created)
            for waiting in held:
                await send(waiting)
            held.clear()

        await self.app(scope, receive_and_keep, send_after_record)

    async def _record(self, scope: Scope, body: bytes, created: str | None) -> None:
        state = scope.get("state") or {}
        principal = state.get(PRINCIPAL_STATE_KEY)
        route = scope.get("route")
        sessions: SessionMaker | None = getattr(self.fastapi_app.state, "sessions", None)
        if not isinstance(principal, Principal) or not isinstance(route, APIRoute):
            return  # exempt: nobody signed in (see `exemption`)
        if sessions is None:
            AUDIT_RECORDS_WRITTEN.labels("no_database").inc()
            return
        change = state.get(CHANGE_STATE_KEY)
        record = audit_record(
            service=self.service,
            route=route,
            principal=principal,
            path_params=scope.get("path_params") or {},
            query=scope.get("query_string", b"").decode("latin-1"),
            body=body,
            client=scope.get("client"),
            created_id=created,
            change=change if isinstance(change, AuditChange) else None,
        )
        try:
            async with sessions() as session, session.begin():
                await emit(session, record, subject=record.target_id)
        except Exception:
            # The change is committed; failing its answer now would invite a retry
            # that repeats it. Logged and counted instead.
            AUDIT_RECORDS_WRITTEN.labels("failed").inc()
            log.exception("audit record not written", extra={"action": record.action})
            return
        AUDIT_RECORDS_WRITTEN.labels("written").inc()


def audit_record(
    *,
    service: str,
    route: APIRoute,
    principal: Principal,
    path_params: Mapping[str, Any],
    query: str,
    body: bytes,
    client: tuple[str, int] | None,
    created_id: str | None = None,
    change: AuditChange | None = None,
) -> AuditRecorded:
    """The audit record of one successful call (see the module for the mapping);
    `created_id` is the `id` of the answer, the object a call without an id in its path
    created; `change` what the route noted it changed."""
    sent = _json_body(body)
    org_id = _org_of(path_params, query, sent)
    target_type, target_id = "org", str(org_id) if org_id else None
    if created_id is not None:
        last = route.path.rstrip("/").rsplit("/", 1)[-1]
        target_type, target_id = (last.removesuffix("s") or "object"), created_id
    for name, value in path_params.items():
        match = _TARGET_PARAM.match(name)
        if match and name != "org_id":
            target_type, target_id = match["kind"], str(value)
    if target_id is None:
        target_type = route.path.removeprefix("/v1").strip("/").split("/")[0] or "service"
    diff: dict[str, Any] = {}
    if sent is not None:
        diff["request"] = mask_secrets(sent)
    params = {k: str(v) for k, v in path_params.items() if k != "org_id"}
    if params:
        diff["path"] = params
    if change is not None:
        diff["before"] = mask_secrets(change.before)
        diff["after"] = mask_secrets(change.after)
    if len(json.dumps(diff, default=str)) > MAX_DIFF_BYTES:
        fields = sorted(sent) if isinstance(sent, dict) else []
        changed = sorted(change.after) if change is not None else []
        diff = {"truncated": True, "fields": fields, "changed": changed}
    return AuditRecorded(
        service=service,
        org_id=org_id,
        actor_id=principal.user_id,
        action=f"{service}.{route.name}"[:100],
        target_type=target_type[:50],
        target_id=target_id[:100] if target_id else None,
        diff=diff,
        ip=client[0][:64] if client else None,
        request_id=request_id_var.get(),
        at=datetime.now(UTC),
    )


def _created_id(answer: bytes) -> str | None:
    """The `id` of a JSON object answer (nothing else of it is kept)."""
    try:
        parsed = json.loads(answer) if answer else None
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("id"), str | int):
        return str(parsed["id"])[:100]
    return None


def _json_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return {"non_json_bytes": len(body)}


def _org_of(path_params: Mapping[str, Any], query: str, sent: Any) -> uuid.UUID | None:
    candidates: list[Any] = [path_params.get("org_id")]
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "org_id":
            candidates.append(value)
    if isinstance(sent, dict):
        candidates.append(sent.get("org_id"))
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            return candidate if isinstance(candidate, uuid.UUID) else uuid.UUID(str(candidate))
        except ValueError:
            continue
    return None
