"""The live tail: per-second requests, errors and rejections of the org as they happen,
and the newest requests of the log, refreshed.

The browser's EventSource connects to the console, never to usage: the console opens
usage's live stream (server-sent events) with the user's token and passes the frames
through unchanged, so the token stays in the sealed cookie and out of page JavaScript.

Live traffic by default, the org's `tg_test_` keys with `?mode=test` (usage counts
them apart): the chart's stream and the list of newest requests always show one mode,
the same one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tollgate.console.backends import BackendDown, BackendProblem, LiveStreamsFull
from tollgate.console.pages.orgs import TRAFFIC_MODES, traffic_mode
from tollgate.console.web import CurrentSession, SignInRequired, backends, org_context, render

router = APIRouter()
RETRY_SECONDS = "10"  # the page's script waits as long before it connects again


@router.get("/orgs/{org_id}/live")
async def live_page(
    request: Request, org_id: uuid.UUID, session: CurrentSession, mode: str | None = None
) -> Response:
    ctx = await org_context(request, session, org_id)
    context = {"ctx": ctx, "me": ctx.me, "orgs": ctx.orgs, "org": ctx.org}
    return render(
        request, "live.html", {**context, "mode": traffic_mode(mode), "modes": TRAFFIC_MODES}
    )


def _too_many_streams(request: Request) -> Response:
    page = render(request, "error.html", {"status": 429, "reason": "streams"}, status=429)
    page.headers["retry-after"] = RETRY_SECONDS
    return page


@router.get("/orgs/{org_id}/live/stream")
async def live_stream(
    request: Request, org_id: uuid.UUID, session: CurrentSession, mode: str | None = None
) -> Response:
    """usage's SSE stream of the org's `mode` traffic (live unless test), proxied with
    the user's token. Too many streams
    (this console's `live_streams_max`, or usage's own limits) is the 429 page; another
    refusal (no access) or usage being down is a plain status. The page's script
    connects again after a while (EventSource itself gives up on a non-200)."""
    stack = AsyncExitStack()
    try:
        chunks = await stack.enter_async_context(
            backends(request).live_counts(session.access_token, org_id, traffic_mode(mode))
        )
    except LiveStreamsFull:
        await stack.aclose()
        return _too_many_streams(request)
    except BackendProblem as exc:
        await stack.aclose()
        if exc.status == 401:
            raise SignInRequired from exc
        if exc.status == 429:
            return _too_many_streams(request)
        return Response(status_code=exc.status, headers={"retry-after": RETRY_SECONDS})
    except BackendDown:
        await stack.aclose()
        return Response(status_code=503, headers={"retry-after": RETRY_SECONDS})

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await stack.aclose()

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
