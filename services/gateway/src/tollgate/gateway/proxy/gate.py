"""The gateway's request path: admit or refuse, forward, answer, record one event.

First the request target is normalised (`paths`): one decoded path without dot
segments decides the API, the route, its scopes and price, the event's `path` and
what is forwarded; an ambiguous target is a 400 before anything else (no event).
Then, in this order (the first failing check answers, problem+json carrying the
request id; checks 1-5 are `admission.admit`, a pure function):

1. unknown API slug → 404; retired API → 410
2. missing, malformed, unknown or revoked key → 401; expired key → 401
3. disabled key, client IP outside the key's allowlist, API not allowed for the key,
   no route of the API matches, a scope the route requires missing → 403
4. org prepaid and out of credits → 402
5. declared body larger than the cap → 413
6. over a rate limit → 429 with `Retry-After`

then, for a test key or an API with a mock or request validation configured (one
attribute test; other requests skip this), `_sandboxed`: validation against the API's
compiled OpenAPI document (400 `request-invalid`, a rejection), then the mock
(`mock`, from memory) or, for a test key, the sandbox upstream; a test key never
reaches the live upstream and costs 0 (`mode: test` on its event).

Then the request is forwarded to the upstream with streaming bodies both ways
(502 when the upstream cannot be reached, 504 when it does not answer in the API's
timeout, 502 `upstream-refused` when the upstream's address is not allowed by the
network policy), and one `request.completed` or `request.rejected` event is handed
to the publisher, which journals it to disk, before the answer is complete: a
`kill -9` loses only the events of answers not yet fully sent.

Every request gets one `traceparent`, sent upstream and carried by its event: for a
request sampled by `tracing` (parent-based ratio), the context of its SERVER span;
otherwise a cheap child of the client's (`headers.child_traceparent`), the SDK
untouched.

This module must do no I/O besides the upstream call, Redis under the `redis` limit
policy, the name resolution of an upstream once per TTL (`upstreams`) and the
event journal's one `write()`: keys, APIs and balances come from the in-memory
registry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import hdrs
from multidict import CIMultiDict

from tollgate.contracts.events.gateway import RejectionReason
from tollgate.gateway.config import Settings
from tollgate.gateway.events.publisher import COMPLETED, REJECTED, EventPublisher
from tollgate.gateway.limits.limiter import RateLimiter, RedisUnavailable
from tollgate.gateway.limits.windows import RATE_LIMIT_FIELDS, Verdict
from tollgate.gateway.listener import Request, Response, StreamResponse
from tollgate.gateway.proxy.admission import TOO_LARGE_SLUG, Refusal, admit, charged
from tollgate.gateway.proxy.cors import CORS_FIELDS, CorsPolicy, add_cors_headers, cors_headers
from tollgate.gateway.proxy.headers import (
    REQUEST_DROP,
    RESPONSE_DROP,
    TRACEPARENT_FIELD,
    TRACESTATE_FIELD,
    TrustedProxies,
    child_traceparent,
    connection_tokens,
    forwarded_fields,
    forwarded_for,
    is_key_bearer,
)
from tollgate.gateway.proxy.identity import identity_signer
from tollgate.gateway.proxy.ids import request_id as new_request_id
from tollgate.gateway.proxy.metrics import REQUEST_METRICS
from tollgate.gateway.proxy.mock import MockRefused, MockState, mock_answer, preferences, seed_of
from tollgate.gateway.proxy.paths import AmbiguousPath, Target, normalise
from tollgate.gateway.proxy.tracing import RequestSpans, traceparent_of
from tollgate.gateway.proxy.upstream_http import UpstreamError, UpstreamResponse
from tollgate.gateway.proxy.upstreams import UpstreamClients, UpstreamRefused
from tollgate.gateway.registry.openapi import Operation
from tollgate.gateway.registry.plans import PlanRecord
from tollgate.gateway.registry.records import ApiRecord, KeyRecord, RouteRecord, Sandbox
from tollgate.gateway.registry.store import Registry
from tollgate.kit.problems import PROBLEM_CONTENT_TYPE, problem_body

log = logging.getLogger(__name__)

_count = REQUEST_METRICS.count


_RESPONSE_DROP_LIMITED = RESPONSE_DROP | RATE_LIMIT_FIELDS
USER_AGENT = "tollgate-gateway"  # sent upstream when the client sent none
_BUFFER_LIMIT = 256 * 1024  # bodies up to this size are read whole; larger ones stream
_CHUNK = 64 * 1024

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    410: "Gone",
    413: "Content Too Large",
    429: "Too Many Requests",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


# RFC 9110 §11.6.1: a 401 names how to authenticate. The key goes in `X-API-Key`
# (scheme `ApiKey`, not registered: named for clients and docs) or as a bearer token.
WWW_AUTHENTICATE = 'ApiKey realm="tollgate", Bearer realm="tollgate"'


CLIENT_CLOSED = 499  # nginx's status for a request its client abandoned


class _BodyTooLarge(Exception):
    pass


class _Expiry:
    """One request's upstream deadline: cancels the waiting task once, at `at`, unless
    ended first (`_Deadlines.end`)."""

    __slots__ = ("at", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], at: float) -> None:
        self.task: asyncio.Task[Any] | None = task
        self.at = at
        self.fired = False

    def fire(self) -> None:
        if self.task is not None:
            self.fired = True
            self.task.cancel()
            self.task = None


class _Deadlines:
    """The upstream deadlines of one length (an API's timeout). They come due in the
    order they were set, so one timer serves them all: arming and cancelling a timer
    per request was about 2 % of its CPU. Ended deadlines are dropped from the front as
    new ones come, and all at once when they are most of the queue (behind a slow
    request), so the queue holds at most about twice the requests waiting."""

    __slots__ = ("_due", "_live", "_loop", "_seconds", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        self._due: deque[_Expiry] = deque()
        self._live = 0  # deadlines set and not yet ended nor fired
        self._timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[Any]) -> _Expiry:
        expiry = _Expiry(task, self._loop.time() + self._seconds)
        due = self._due
        while due and due[0].task is None:
            due.popleft()
        if len(due) > 1024 and self._live < len(due) // 2:
            self._due = due = deque(waiting for waiting in due if waiting.task is not None)
        due.append(expiry)
        self._live += 1
        if self._timer is None:
            self._timer = self._loop.call_at(expiry.at, self._fire)
        return expiry

    def end(self, expiry: _Expiry) -> None:
        if expiry.task is not None:
            expiry.task = None
            self._live -= 1

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time() + 0.001  # timers may run a hair early (ms resolution)
        due = self._due
        while due and (due[0].task is None or due[0].at <= now):
            expiry = due.popleft()
            if expiry.task is not None:
                self._live -= 1
                expiry.fire()
        if due:
            self._timer = self._loop.call_at(due[0].at, self._fire)


class _Call:
    """What is known about one request as it goes through the gate."""

    __slots__ = (
        "api",
        "check",
        "client_ip",
        "cors_origin",
        "drift",
        "forward",
        "forwarded_for",
        "key",
        "method",
        "path",
        "plan",
        "reason",
        "request_id",
        "route",
        "served_by",
        "started",
        "started_wall",
        "status",
        "target",
        "traceparent",
        "tracestate",
    )

    def __init__(
        self,
        request_id: str,
        method: str,
        target: Target,
        client_ip: str,
        forwarded_for: str | None,
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.target = target
        self.path = "/" + target.slug + target.path  # the API path once the API is known
        self.forward = target.forward
        self.client_ip = client_ip
        self.forwarded_for = forwarded_for  # a trusted peer's X-Forwarded-For chain
        self.api: ApiRecord | None = None
        self.key: KeyRecord | None = None
        self.route: RouteRecord | None = None
        self.plan: PlanRecord | None = None  # the key's org's, once the key is known
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.traceparent = ""  # sent upstream and on the event
        self.tracestate: str | None = None
        self.status: int | None = None  # once answered
        self.reason: RejectionReason | None = None  # when refused
        self.cors_origin: str | None = None  # a listed browser origin
        self.served_by = "upstream"  # or "sandbox", "mock"
        self.check: Operation | None = None  # answers checked against it (test mode)
        self.drift: list[str] | None = None  # what the answer broke, when checked


def _unreadable(status: int, title: str, detail: str, slug: str) -> Response:
    """A request refused before routing, like an HTTP parse error (a target that cannot be
    read one way only, 400; a head too large, 431): no API or key is known, so no event
    is queued."""
    request_id = new_request_id()
    _count("rejected", status)
    return Response(
        body=problem_body(status, title, detail, slug=slug, request_id=request_id),
        status=status,
        headers={"Content-Type": PROBLEM_CONTENT_TYPE, "X-Request-ID": request_id},
    )


# Request parameters that carry the Tollgate key (location, lowercase name).
_KEY_PARAMETERS = frozenset({("header", "x-api-key"), ("query", "api_key")})
_KEY_PARAMETERS_AUTH = _KEY_PARAMETERS | {("header", "authorization")}

# Codings whose bodies the mock and validation read (what aiohttp decoded without the
# optional brotli and zstd packages); the bytes forwarded are always those sent.
_ZLIB_WBITS = {"gzip": 16 + 15, "x-gzip": 16 + 15, "deflate": 15}


def decoded_body(body: bytes, coding: str | None, cap: int) -> bytes:
    """`body` with its `Content-Encoding` (gzip or deflate) undone, for the mock and
    request validation; raises `_BodyTooLarge` when it decodes to more than `cap` bytes.
    Other codings, and data that does not decode, are returned as they are.

    A gzip body is every member of it (RFC 1952 §2.2), as upstreams read it (Go, Java,
    Python, Node): the first alone let an empty first member pass validation for a
    second one the upstream reads (the bytes forwarded are the client's)."""
    coding = (coding or "").strip().lower()
    if not body or not coding or coding == "identity":
        return body
    wbits = _ZLIB_WBITS.get(coding)
    if wbits is None:
        return body
    if coding == "deflate" and body[0] & 0x0F != 8:
        wbits = -15  # deflate without its zlib header, as aiohttp accepted it
    decoder = zlib.decompressobj(wbits)
    try:
        data = decoder.decompress(body, cap + 1)
    except zlib.error:
        return body
    while wbits > 15 and decoder.eof and decoder.unused_data and len(data) <= cap:
        rest = decoder.unused_data
        decoder = zlib.decompressobj(wbits)
        try:
            data += decoder.decompress(rest, cap + 1 - len(data))
        except zlib.error:
            break  # not another member: trailing bytes an upstream ignores or refuses
    if len(data) > cap:
        raise _BodyTooLarge
    return data


class Gate:
    """Admits, forwards and records requests; one per gateway process."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        limiter: RateLimiter,
        publisher: EventPublisher,
        upstreams: UpstreamClients,
        spans: RequestSpans | None = None,
    ) -> None:
        self._registry = registry
        self._limiter = limiter
        self._publisher = publisher
        self._upstreams = upstreams
        self._pepper = settings.key_pepper.encode()
        self._max_body = settings.max_body_bytes
        self._max_head = settings.max_head_bytes
        self._body_idle_s = settings.client_body_idle_timeout_s
        self._instance = settings.instance_id
        self._proxies = TrustedProxies(settings.trusted_proxies)
        cors = CorsPolicy(settings.cors_origins)
        self._cors = cors if cors.origins else None
        self._spans = spans
        self._mock_state = MockState(
            settings.mock_state_keys, settings.mock_state_items, settings.mock_state_bytes
        )
        self._random = random.random  # the mock's injected error rate
        self._identity = identity_signer(settings.identity_secrets)
        # The gate is built on the running loop: held here so the request path never
        # calls `get_running_loop()` (CPython 3.11 checks the pid, a syscall, each time).
        self._loop = asyncio.get_running_loop()
        self._deadlines: dict[float, _Deadlines] = {}  # by API timeout

    # ------------------------------------------------------------------ entry point

    async def handle(self, request: Request) -> Response:
        if request.head_size > self._max_head:
            # The listener bounds each field (16 KiB) and holds at most twice this while
            # a head arrives; what is forwarded is bounded here, with a request id.
            return _unreadable(
                431,
                "Request Header Fields Too Large",
                f"Request heads are limited to {self._max_head} bytes of header fields.",
                "head-too-large",
            )
        raw_path, _, query = request.raw_path.partition("?")
        try:
            target = normalise(raw_path)
        except AmbiguousPath as exc:
            return _unreadable(400, "Bad Request", str(exc), "ambiguous-path")
        peer = request.remote or ""
        proxies = self._proxies
        chain = forwarded_for(request.headers) if proxies.trusts(peer) else None
        client_ip = proxies.client_ip(peer, chain) if chain else peer or "0.0.0.0"
        call = _Call(new_request_id(), request.method, target, client_ip, chain)
        if self._cors is not None and (origin := self._cors.allowed_origin(request)):
            preflight = self._cors.preflight(request, origin)
            if preflight is not None:
                return preflight
            call.cors_origin = origin
        spans = self._spans
        incoming = request.headers.get(TRACEPARENT_FIELD)
        if spans is None or not spans.sampled(incoming):
            call.traceparent = child_traceparent(incoming, "00" if spans else "01")
            if incoming and incoming.strip()[3:35] == call.traceparent[3:35]:
                # The client's trace goes on, so its vendor state goes along (W3C).
                call.tracestate = request.headers.get(TRACESTATE_FIELD)
            return await self._answer(call, request, query)
        span = spans.start(
            request.headers,
            method=call.method,
            path=call.path,
            scheme=request.scheme,
            client_ip=client_ip,
            request_id=call.request_id,
        )
        call.traceparent, call.tracestate = traceparent_of(span)
        error: BaseException | None = None
        try:
            return await self._answer(call, request, query)
        except BaseException as exc:
            error = exc
            raise
        finally:
            key, api = call.key, call.api
            spans.finish(
                span,
                method=call.method,
                api_slug=api.slug if api else None,
                api_id=api.api_id if api else None,
                org_id=key.org_id if key else None,
                key_id=key.key_id if key else None,
                status=call.status,
                reason=call.reason,
                error=error,
            )

    async def _answer(self, call: _Call, request: Request, query: str) -> Response:
        try:
            forwarded_query, key_in_auth = self._admit(call, request, query)
            verdict = await self._limit(call)
        except Refusal as refusal:
            return self._refuse(call, refusal)
        assert call.key is not None
        assert call.api is not None
        if call.key.test or call.api.sandboxed:
            return await self._sandboxed(call, request, forwarded_query, key_in_auth, verdict)
        return await self._forward(call, request, forwarded_query, key_in_auth, verdict)

    # ------------------------------------------------------------------ test mode, mock

    async def _sandboxed(
        self,
        call: _Call,
        request: Request,
        query: str,
        key_in_auth: bool,
        verdict: Verdict | None,
    ) -> Response:
        """Test keys, mocks and request validation: a test key reaches the sandbox
        upstream or the mock, never the live upstream; a live key never the sandbox."""
        api, key, route = call.api, call.key, call.route
        assert api is not None
        assert key is not None
        settings = route.sandbox if route is not None else api.sandbox
        contract = api.contract
        use_mock = settings.mock or (key.test and api.sandbox_base is None)
        if use_mock and contract is None:
            return self._refuse(
                call,
                Refusal(
                    503,
                    RejectionReason.SANDBOX_UNAVAILABLE,
                    "This API has no sandbox upstream and no OpenAPI document to mock from."
                    if key.test
                    else "The API's mock has no OpenAPI document to answer from.",
                    slug="mock-unavailable",
                ),
            )
        operation = None
        path_values: dict[str, str] = {}
        path_known = False
        if contract is not None and (
            use_mock or settings.validate_requests or (key.test and settings.validate_responses)
        ):
            operation, path_values, path_known = contract.operation(call.method, call.path)
        body: bytes | None = None
        content = b""  # the body as the document describes it (decoded), for mock and checks
        if use_mock or (settings.validate_requests and contract is not None):
            try:
                body = await self._whole_body(request)
                content = decoded_body(
                    body, request.headers.get(hdrs.CONTENT_ENCODING), self._max_body
                )
            except _BodyTooLarge:
                return self._too_large(call)
            except TimeoutError:
                return self._body_stalled(call, [0, 1])
            except ConnectionError:
                return self._client_gone(call, [0, 0])
        if settings.validate_requests and contract is not None:
            if operation is None:
                violations = [
                    f"/method: {call.method} is not documented for this path"
                    if path_known
                    else f"/path: {call.path} is not documented"
                ]
            else:
                violations = operation.request_violations(
                    path_values,
                    query,
                    request.headers,
                    request.headers.get("Content-Type"),
                    content,
                    # The key is the gateway's: a document that describes its header or
                    # parameter must never get it quoted back into a violation (and so
                    # into the rejection event), nor miss the stripped `api_key`.
                    _KEY_PARAMETERS_AUTH if key_in_auth else _KEY_PARAMETERS,
                )
            if violations:
                return self._invalid(call, violations)
        if use_mock:
            assert contract is not None
            return await self._mock(
                call, request, operation, path_values, settings, content, query, verdict
            )
        if key.test:
            call.served_by = "sandbox"
            if settings.validate_responses and operation is not None:
                call.check = operation
            return await self._forward(
                call, request, query, key_in_auth, verdict, base=api.sandbox_base, body=body
            )
        return await self._forward(call, request, query, key_in_auth, verdict, body=body)

    async def _whole_body(self, request: Request) -> bytes:
        """The request body, whole, up to the cap (raises `_BodyTooLarge` beyond it)."""
        if not request.body_exists:
            return b""
        if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
            await request.send_continue()
        declared = request.content_length
        if declared is not None and declared <= _BUFFER_LIMIT:
            # Admission checked the declared length against the cap: the plain path's read.
            return await self._small_body(request)
        received = [0, 0]
        try:
            chunks = [chunk async for chunk in self._capped_body(request, received)]
        except _BodyTooLarge:
            if received[1]:  # the body went idle: a 408, not a 413
                raise TimeoutError from None
            raise
        return b"".join(chunks)

    def _invalid(self, call: _Call, violations: list[str]) -> Response:
        """400 listing each violation of the API's document; never forwarded, never
        charged (a `request_invalid` rejection)."""
        response = self._problem(
            call,
            400,
            f"The request does not match the API's OpenAPI document ({len(violations)} "
            "violation" + ("s)." if len(violations) != 1 else ")."),
            "request-invalid",
            violations=[
                {"pointer": text.split(": ", 1)[0], "detail": text.split(": ", 1)[-1]}
                for text in violations
            ],
        )
        self._rejected(call, 400, RejectionReason.REQUEST_INVALID, violations)
        return response

    async def _mock(
        self,
        call: _Call,
        request: Request,
        operation: Operation | None,
        path_values: dict[str, str],
        settings: Sandbox,
        body: bytes,
        query: str,
        verdict: Verdict | None,
    ) -> Response:
        """Answer from the API's document (no I/O; see `mock`)."""
        api, key = call.api, call.key
        assert api is not None
        assert key is not None
        assert api.contract is not None
        call.served_by = "mock"
        if settings.latency_s:
            await asyncio.sleep(settings.latency_s)
        if operation is None:
            return self._mock_failed(
                call, 404, "mock-no-operation", "The document has no such operation."
            )
        if settings.error_percent and self._random() * 100 < settings.error_percent:
            return self._mock_failed(
                call,
                500,
                "mock-injected-error",
                "The mock failed this call on purpose (error rate).",
            )
        prefer = preferences(request.headers.getall("Prefer", []))
        try:
            answer = None
            if settings.stateful and not prefer.keys() & {"code", "example", "dynamic"}:
                answer = self._mock_state.answer(
                    api.api_id, key.key_id, operation, call.path, path_values, query, body
                )
            if answer is None:
                answer = mock_answer(
                    api.contract,
                    operation,
                    prefer,
                    request.headers.get("Accept"),
                    seed_of(call.method, call.path, query, body),
                )
        except MockRefused as refused:
            return self._mock_failed(call, refused.status, refused.slug, refused.detail)
        except (ValueError, TypeError, RecursionError) as exc:
            # A document the generator cannot follow: the caller learns it, the log why.
            log.warning("mock failed", extra={"api_id": api.api_id, "error": repr(exc)[:200]})
            return self._mock_failed(
                call, 500, "mock-failed", "The mock cannot build an answer from this document."
            )
        headers: CIMultiDict[str] = CIMultiDict(answer.headers)
        headers["X-Request-ID"] = call.request_id
        if verdict is not None:
            for name, value in verdict.headers():
                headers[name] = value
        for name, value in (call.route or api).lifecycle_headers:
            headers[name] = value
        if call.cors_origin is not None:
            add_cors_headers(headers, call.cors_origin)
        data = b"" if call.method == "HEAD" else answer.body
        response = Response(body=data, status=answer.status, headers=headers)
        self._completed(call, answer.status, len(body), len(data), 0.0)
        return response

    def _mock_failed(self, call: _Call, status: int, slug: str, detail: str) -> Response:
        response = self._problem(call, status, detail, slug)
        self._completed(call, status, 0, 0, 0.0)
        return response

    # ------------------------------------------------------------------ admission

    def _admit(self, call: _Call, request: Request, query: str) -> tuple[str, bool]:
        """Checks 1-5 (`admission`); returns the query to forward and whether an
        `Authorization` header carries a Tollgate key."""
        try:
            admitted = admit(
                self._registry,
                slug=call.target.slug,
                path=call.target.path,
                method=call.method,
                headers=request.headers,
                query=query,
                client_ip=call.client_ip,
                now=call.started_wall,
                content_length=request.content_length,
                pepper=self._pepper,
                max_body=self._max_body,
            )
        except Refusal as refusal:
            if refusal.api is not None:
                call.api = refusal.api
                call.path = call.target.path
            call.key = refusal.key
            call.route = refusal.route
            raise
        call.api = admitted.api
        call.path = call.target.path
        call.key = admitted.key
        call.route = admitted.route
        return admitted.query, admitted.key_in_auth

    async def _limit(self, call: _Call) -> Verdict | None:
        assert call.key is not None
        assert call.api is not None
        plan = call.plan = self._registry.plan_of(call.key.org_id)
        try:
            verdict = await self._limiter.check(call.key, call.api, call.route, plan)
        except RedisUnavailable:
            raise Refusal(
                503,
                RejectionReason.RATE_LIMITED,
                "Rate limits cannot be evaluated right now.",
                [("Retry-After", "1")],
            ) from None
        if verdict is not None and not verdict.allowed:
            # 429 for a rate limit; the plan's 402/429 for its quota or a suspension.
            raise Refusal(
                verdict.status,
                verdict.reason,
                verdict.detail,
                [("Retry-After", str(verdict.retry_after_s)), *verdict.headers()],
                slug=verdict.slug,
            )
        return verdict

    # ------------------------------------------------------------------ answers

    def _problem(
        self,
        call: _Call,
        status: int,
        detail: str,
        slug: str,
        extra: list[tuple[str, str]] | None = None,
        **extensions: Any,
    ) -> Response:
        body = problem_body(
            status,
            _TITLES.get(status, "Error"),
            detail,
            slug=slug,
            request_id=call.request_id,
            **extensions,
        )
        headers = CIMultiDict(
            [("Content-Type", PROBLEM_CONTENT_TYPE), ("X-Request-ID", call.request_id)]
        )
        for name, value in extra or ():
            headers.add(name, value)
        if call.api is not None:
            for name, value in (call.route or call.api).lifecycle_headers:
                headers.add(name, value)
        if call.cors_origin is not None:
            add_cors_headers(headers, call.cors_origin)
        return Response(body=body, status=status, headers=headers)

    def _refuse(self, call: _Call, refusal: Refusal) -> Response:
        extra = refusal.headers
        if refusal.status == 401:
            extra = [*extra, ("WWW-Authenticate", WWW_AUTHENTICATE)]
        response = self._problem(call, refusal.status, refusal.detail, refusal.slug, extra)
        self._rejected(call, refusal.status, refusal.reason)
        return response

    def _rejected(
        self,
        call: _Call,
        status: int,
        reason: RejectionReason,
        violations: list[str] | None = None,
    ) -> None:
        key = call.key
        api = call.api
        call.status = status
        call.reason = reason
        data = {
            "request_id": call.request_id,
            "time": call.started_wall,
            "org_id": key.org_id if key else None,
            "key_id": key.key_id if key else None,
            "api_id": api.api_id if api else None,
            "route_id": call.route.route_id if call.route else None,
            "method": call.method,
            "path": call.path,
            "status": status,
            "reason": reason.value,
            "latency_ms": int((time.perf_counter() - call.started) * 1000),
            "client_ip": call.client_ip,
            "gateway_instance": self._instance,
            "mode": "test" if key is not None and key.test else "live",
        }
        if violations is not None:
            data["violations"] = violations
        self._publisher.publish(key.org_id if key else None, REJECTED, data, call.traceparent)
        _count("rejected", status)

    # ------------------------------------------------------------------ forwarding

    def _upstream_headers(
        self, call: _Call, request: Request, key_in_auth: bool
    ) -> list[tuple[str, str]]:
        api = call.api
        assert api is not None
        incoming = request.headers
        drop = api.request_drop
        if drop is None:  # once per API version
            drop = api.request_drop = REQUEST_DROP | {n.lower() for n, _ in api.upstream_headers}
        if hdrs.CONNECTION in incoming:
            drop = drop | connection_tokens(incoming)
        out = forwarded_fields(incoming.items(), drop)
        if key_in_auth:
            # Only the values carrying a Tollgate key: the upstream's own credentials pass.
            out = [
                (name, value)
                for name, value in out
                if name.lower() != "authorization" or not is_key_bearer(value)
            ]
        peer = request.remote or ""
        chain = call.forwarded_for
        if chain:
            out.append(("X-Forwarded-For", f"{chain}, {peer}"))
            out.append(("X-Forwarded-Proto", incoming.get("X-Forwarded-Proto", request.scheme)))
        else:
            out.append(("X-Forwarded-For", peer))
            out.append(("X-Forwarded-Proto", request.scheme))
        host = incoming.get(hdrs.HOST)
        if host:
            out.append(("X-Forwarded-Host", host))
        if hdrs.USER_AGENT not in incoming:
            out.append(("User-Agent", USER_AGENT))
        out.append(("X-Request-ID", call.request_id))
        out.append(("traceparent", call.traceparent))
        if call.tracestate:
            out.append(("tracestate", call.tracestate))
        out.extend(api.upstream_headers)
        return out

    def _identity_lines(self, call: _Call, key: KeyRecord, path: str) -> str:
        """The signed caller identity's header lines (none without a secret); a value
        that could break out of its line raises `UpstreamError`."""
        if self._identity is None:
            return ""
        plan = call.plan
        return self._identity.lines(
            call.method,
            path,
            key,
            call.request_id,
            time.time(),  # when it is sent: a slow upload may take a while
            plan.plan_id if plan is not None else None,
        )

    async def _forward(
        self,
        call: _Call,
        request: Request,
        query: str,
        key_in_auth: bool,
        verdict: Verdict | None,
        *,
        base: str | None = None,
        body: bytes | None = None,
    ) -> Response:
        """Forward to the live upstream, or to `base` (a test key's sandbox, which never
        gets the live upstream's credentials); `body`: already read whole."""
        api, key = call.api, call.key
        assert api is not None
        assert key is not None
        sandbox = base is not None
        if api.credentials_broken and not sandbox:
            return self._upstream_failed(call, 502, "The API's upstream credentials are unusable.")
        base = base or api.upstream_base
        try:
            origin = await self._upstreams.client_for(base)
        except UpstreamRefused as exc:
            log.warning(
                "upstream address refused", extra={"api_id": api.api_id, "reason": str(exc)}
            )
            return self._upstream_failed(
                call, 502, "The upstream's address is not allowed.", "upstream-refused"
            )
        path = self._upstreams.path_of(base) + call.forward
        headers = self._upstream_headers(call, request, key_in_auth)
        if sandbox and api.upstream_headers:
            live = set(api.upstream_headers)
            headers = [header for header in headers if header not in live]
        target = f"{path}?{query}" if query else path
        received = [0, 0]  # body bytes read; 1 once the body went idle too long
        stream: AsyncIterator[bytes] | None = None
        length: int | None = None
        declared = request.content_length
        if body is not None:
            received[0] = len(body)
            if not body and not request.body_exists:
                body = None
        elif request.body_exists:
            try:
                if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
                    # Admitted: now ask for the body (rejections never made the client
                    # send it).
                    await request.send_continue()
                if declared is not None and declared <= _BUFFER_LIMIT:
                    body = await self._small_body(request)
                    received[0] = len(body)
            except TimeoutError:
                return self._body_stalled(call, received)
            except ConnectionError:
                return self._client_gone(call, received)
            if body is None:
                stream = self._capped_body(request, received)
                length = declared
        upstream_started = time.perf_counter()
        # The API's timeout bounds the wait for the response head; the body then streams
        # under the client's per-read timeout. What `asyncio.timeout` does, without its
        # per-call lookups and its timer: the deadlines' shared timer cancels this task.
        task = asyncio.current_task(self._loop)
        assert task is not None
        deadlines = self._deadlines.get(api.timeout_s)
        if deadlines is None:
            deadlines = self._deadlines[api.timeout_s] = _Deadlines(self._loop, api.timeout_s)
        expired = deadlines.start(task)
        try:
            try:
                upstream = await origin.request(
                    call.method,
                    target,
                    headers,
                    body=body,
                    stream=stream,
                    length=length,
                    lines_made=self._identity_lines(call, key, path),
                )
            except asyncio.CancelledError:
                if expired.fired and task.uncancel() == 0:
                    raise TimeoutError from None
                raise
            finally:
                deadlines.end(expired)
        except TimeoutError:
            if received[1]:
                return self._body_stalled(call, received)
            if received[0] > self._max_body:
                return self._too_large(call)
            return self._upstream_failed(call, 504, "The upstream did not answer in time.")
        except (UpstreamError, _BodyTooLarge) as exc:
            if received[1]:
                return self._body_stalled(call, received)
            if received[0] > self._max_body:
                return self._too_large(call)
            return self._upstream_broke(call, exc)
        except ConnectionError:  # the client left while its body was being sent on
            return self._client_gone(call, received)
        try:
            return await self._relay(call, request, upstream, verdict, received, upstream_started)
        finally:
            upstream.close()

    def _too_large(self, call: _Call) -> Response:
        return self._refuse(
            call,
            Refusal(
                413,
                RejectionReason.PAYLOAD_TOO_LARGE,
                f"Request bodies are limited to {self._max_body} bytes.",
                slug=TOO_LARGE_SLUG,
            ),
        )

    def _upstream_broke(self, call: _Call, exc: Exception) -> Response:
        """502 (504 when it went silent): the upstream failed the exchange."""
        api = call.api
        assert api is not None
        log.warning(
            "upstream call failed",
            extra={"api_id": api.api_id, "error": type(exc).__name__, "detail": str(exc)},
        )
        if isinstance(exc, TimeoutError):
            return self._upstream_failed(call, 504, "The upstream did not answer in time.")
        return self._upstream_failed(call, 502, "The upstream could not be reached.")

    def _client_gone(self, call: _Call, received: list[int]) -> Response:
        """The client closed its connection before its body was all read: recorded as
        completed with 499 (nginx's "client closed request"), free; nobody reads the
        answer."""
        self._completed(call, CLIENT_CLOSED, received[0], 0, 0.0, free=True)
        return Response(status=CLIENT_CLOSED)

    def _body_stalled(self, call: _Call, received: list[int]) -> Response:
        """408: the client stopped sending its body. Recorded as completed, free."""
        response = self._problem(
            call,
            408,
            f"The request body stalled for {self._body_idle_s:g} s.",
            "body-timeout",
        )
        response.force_close()
        self._completed(call, 408, received[0], 0, 0.0, free=True)
        return response

    async def _small_body(self, request: Request) -> bytes:
        """The whole (declared small) body; TimeoutError when it stalls."""
        content = request.content
        if content.is_eof():
            # Arrived with the head (the common case): no wait, so no timer.
            return content.read_nowait()
        chunks: list[bytes] = []
        while True:
            async with asyncio.timeout(self._body_idle_s):
                chunk = await content.readany()
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    async def _capped_body(self, request: Request, received: list[int]) -> AsyncIterator[bytes]:
        content = request.content
        while True:
            try:
                async with asyncio.timeout(self._body_idle_s):
                    chunk = await content.read(_CHUNK)
            except TimeoutError:
                received[1] = 1
                raise _BodyTooLarge from None  # ends the upload; the caller answers 408
            if not chunk:
                return
            received[0] += len(chunk)
            if received[0] > self._max_body:
                raise _BodyTooLarge
            yield chunk

    async def _relay(
        self,
        call: _Call,
        request: Request,
        upstream: UpstreamResponse,
        verdict: Verdict | None,
        received: list[int],
        upstream_started: float,
    ) -> Response:
        api = call.api
        assert api is not None
        upstream_headers = upstream.headers
        # One list of pairs, written as the answer's head as it is: the upstream's
        # headers (names come lowercase) without hop-by-hop ones and without those the
        # gateway sets below, then the gateway's.
        drop = RESPONSE_DROP if verdict is None else _RESPONSE_DROP_LIMITED
        if "connection" in upstream_headers:
            drop = drop | connection_tokens(upstream_headers)
        # The route's (merged with the API's, at replay) when a route matched.
        lifecycle = (call.route or api).lifecycle_headers
        if lifecycle:
            drop = drop | {name.lower() for name, _ in lifecycle}
        if call.cors_origin is not None:
            drop = drop | CORS_FIELDS
        headers = [(name, value) for name, value in upstream_headers.items() if name not in drop]
        headers.append(("X-Request-ID", call.request_id))
        if verdict is not None:
            headers += verdict.headers()
        headers += lifecycle
        if call.cors_origin is not None:
            headers += cors_headers(call.cors_origin)
        declared = upstream_headers.get("content-length")
        length = int(declared) if declared and declared.isdigit() else None
        status = upstream.status
        if (
            request.method == "HEAD"
            or status in (204, 304)
            or (length is not None and length <= _BUFFER_LIMIT)
        ):
            try:
                data = await upstream.read_all()
            except UpstreamError as exc:  # cut short, or silent: nothing was sent yet
                return self._upstream_broke(call, exc)
            upstream_waited = time.perf_counter() - upstream_started
            if call.check is not None:
                call.drift = call.check.response_violations(
                    status, upstream_headers.get("content-type"), data
                )
            if request.method == "HEAD" and length is not None:
                # What a GET would carry: the length the upstream announced, no body.
                headers.append(("Content-Length", str(length)))
                buffered = Response(status=status, headers=headers)
            else:
                buffered = Response(body=data, status=status, headers=headers)
            self._completed(call, status, received[0], len(data), upstream_waited)
            return buffered
        upstream_waited = time.perf_counter() - upstream_started
        response = StreamResponse(status=status, headers=headers)
        if length is not None:
            response.content_length = length
        # Without a length the listener chunks the answer, or, to an HTTP/1.0 client (which
        # knows no chunks), ends it by closing the connection.
        # The event is journaled before the client can see the answer complete: before
        # the last announced byte, or before the final chunk. An answer cut short is
        # recorded with what was sent.
        sent = 0
        recorded = False
        try:
            await response.prepare(request)
            while (piece := await upstream.read_chunk()) is not None:
                if length is not None and sent + len(piece) >= length and not recorded:
                    self._completed(call, status, received[0], sent + len(piece), upstream_waited)
                    recorded = True
                await response.write(piece)
                sent += len(piece)
            if not recorded:
                self._completed(call, status, received[0], sent, upstream_waited)
                recorded = True
            await response.write_eof()
        finally:
            if not recorded:
                self._completed(call, status, received[0], sent, upstream_waited)
        return response

    def _upstream_failed(
        self, call: _Call, status: int, detail: str, slug: str | None = None
    ) -> Response:
        slug = slug or ("upstream-timeout" if status == 504 else "upstream-failed")
        response = self._problem(call, status, detail, slug)
        self._completed(call, status, 0, 0, time.perf_counter() - call.started)
        return response

    def _completed(
        self,
        call: _Call,
        status: int,
        request_bytes: int,
        response_bytes: int,
        waited: float,
        *,
        free: bool = False,
    ) -> None:
        api, key, route = call.api, call.key, call.route
        assert api is not None
        assert key is not None
        price = charged(api, route, status, free=free or key.test)
        total = time.perf_counter() - call.started
        call.status = status
        REQUEST_METRICS.observe(max(0.0, total - waited))
        _count("completed", status)
        data = {
            "request_id": call.request_id,
            "time": call.started_wall,
            "org_id": key.org_id,
            "key_id": key.key_id,
            "api_id": api.api_id,
            "route_id": route.route_id if route else None,
            "method": call.method,
            "path": call.path,
            "status": status,
            "latency_ms": int(total * 1000),
            "upstream_latency_ms": int(min(waited, total) * 1000),
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "client_ip": call.client_ip,
            "cost": price,
            "gateway_instance": self._instance,
            "mode": "test" if key.test else "live",
            "served_by": call.served_by,
        }
        if call.drift is not None:
            data["contract_drift"] = call.drift
        self._publisher.publish(key.org_id, COMPLETED, data, call.traceparent)
