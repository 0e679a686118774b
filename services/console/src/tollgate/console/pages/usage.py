"""Usage analytics: traffic by status class and latency percentiles over time (charts),
the busiest APIs, routes, keys and statuses, errors by reason, and a CSV export of the
time series. The range, filters and mode (live traffic by default, or the `tg_test_`
keys' test traffic, which usage counts apart and never mixes in) live in the URL, so a
view can be shared.

The charts are drawn by `static/usage.js` (uPlot) from the series the page carries in a
data attribute; no script is inline. The top keys card is loaded after the page (htmx,
`/usage/top-keys`) and says it is loading until then: ranking thousands of keys is the
slowest question the page asks, and the rest of the page need not wait for it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tollgate.console.backends import Timeseries
from tollgate.console.pages.orgs import TRAFFIC_MODES, time_range, traffic_mode
from tollgate.console.web import CurrentSession, backends, org_context, panel, render

router = APIRouter()
USAGE_RANGES = ("1h", "24h", "7d", "30d")
GRANULARITY = {"1h": "minute", "24h": "hour", "7d": "hour", "30d": "day"}
TOP_DIMENSIONS = ("api", "route", "key", "status")
FIRST_PAINT_TOPS = ("api", "route", "status")  # "key" comes after, from usage_top_keys

UsageFilterValue = Annotated[str | None, Query(max_length=40)]
ModeValue = Annotated[str | None, Query(max_length=10)]


def _query(chosen: str, filters: dict[str, Any], mode: str) -> dict[str, Any]:
    """The view's URL parameters; live, the default mode, is left out."""
    return {"range": chosen, **filters} | ({"mode": mode} if mode != "live" else {})


def _filters(api_id: str | None, key_id: str | None) -> dict[str, Any]:
    """Only well-formed ids are passed on: a hand-edited URL does not break the page."""
    out: dict[str, Any] = {}
    for name, value in (("api_id", api_id), ("key_id", key_id)):
        try:
            out[name] = str(uuid.UUID((value or "").strip()))
        except ValueError:
            continue
    return out


def chart_series(series: Timeseries) -> dict[str, list[Any]]:
    """The columns the charts draw: seconds since the epoch, requests by status class
    (successful, upstream errors, rejected by the gateway) and latency percentiles."""
    points = series.points
    return {
        "t": [int(p.time.timestamp()) for p in points],
        "ok": [max(p.requests - p.rejected - p.errors, 0) for p in points],
        "errors": [p.errors for p in points],
        "rejected": [p.rejected for p in points],
        "p50": [p.p50_ms for p in points],
        "p95": [p.p95_ms for p in points],
        "p99": [p.p99_ms for p in points],
    }


@router.get("/orgs/{org_id}/usage")
async def usage_page(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    range: Annotated[str | None, Query(max_length=10)] = None,
    api_id: UsageFilterValue = None,
    key_id: UsageFilterValue = None,
    mode: ModeValue = None,
) -> Response:
    client = backends(request)
    token = session.access_token
    chosen, start, end = time_range(range, USAGE_RANGES)
    filters = _filters(api_id, key_id)
    shown = traffic_mode(mode)
    sent = {**filters, "mode": shown}
    ctx, series, errors, apis, keys, tops = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.usage_timeseries(token, org_id, GRANULARITY[chosen], start, end, sent)),
        panel(client.usage_errors(token, org_id, start, end, sent)),
        panel(client.apis(token)),
        panel(client.keys(token, org_id, None)),
        asyncio.gather(
            *(
                panel(client.usage_top_by(token, org_id, by, start, end, sent))
                for by in FIRST_PAINT_TOPS
            )
        ),
    )
    api_names = {str(a.id): a.name for a in apis.value or []}
    route_names = {
        str(r.id): f"{r.method} /{a.slug}{r.path_template}"
        for a in apis.value or []
        for r in a.routes
    }
    key_names = {str(k.id): k.name for k in (keys.value.items if keys.value else [])}
    query = _query(chosen, filters, shown)
    return render(
        request,
        "usage.html",
        {
            "ctx": ctx,
            "me": ctx.me,
            "orgs": ctx.orgs,
            "org": ctx.org,
            "range": chosen,
            "ranges": USAGE_RANGES,
            "mode": shown,
            "modes": TRAFFIC_MODES,
            "filters": {"api_id": filters.get("api_id", ""), "key_id": filters.get("key_id", "")},
            "query": query,
            "series": series,
            "chart": chart_series(series.value) if series.value else None,
            "granularity": GRANULARITY[chosen],
            "errors": errors,
            "top_dimensions": TOP_DIMENSIONS,
            "tops": dict(zip(FIRST_PAINT_TOPS, tops, strict=True)),
            "names": {"api": api_names, "route": route_names, "key": key_names},
            "api_names": api_names,
            "key_names": key_names,
        },
    )


@router.get("/orgs/{org_id}/usage/top-keys")
async def usage_top_keys(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    range: Annotated[str | None, Query(max_length=10)] = None,
    api_id: UsageFilterValue = None,
    key_id: UsageFilterValue = None,
    mode: ModeValue = None,
) -> Response:
    """The usage page's top keys card (an htmx fragment) for the page's range, filters
    and mode."""
    client = backends(request)
    token = session.access_token
    _, start, end = time_range(range, USAGE_RANGES)
    sent = {**_filters(api_id, key_id), "mode": traffic_mode(mode)}
    ctx, top, keys = await asyncio.gather(
        org_context(request, session, org_id),
        panel(client.usage_top_by(token, org_id, "key", start, end, sent)),
        panel(client.keys(token, org_id, None)),
    )
    key_names = {str(k.id): k.name for k in (keys.value.items if keys.value else [])}
    return render(
        request,
        "usage_top.html",
        {"org": ctx.org, "by": "key", "top": top, "names": {"key": key_names}},
    )


@router.get("/orgs/{org_id}/usage.csv")
async def usage_csv(
    request: Request,
    org_id: uuid.UUID,
    session: CurrentSession,
    range: Annotated[str | None, Query(max_length=10)] = None,
    api_id: UsageFilterValue = None,
    key_id: UsageFilterValue = None,
    mode: ModeValue = None,
) -> Response:
    """The time series of the page's range, filters and mode as CSV (UTC bucket starts)."""
    chosen, start, end = time_range(range, USAGE_RANGES)
    shown = traffic_mode(mode)
    sent = {**_filters(api_id, key_id), "mode": shown}
    series = await backends(request).usage_timeseries(
        session.access_token, org_id, GRANULARITY[chosen], start, end, sent
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "time",
            "requests",
            "successful",
            "errors",
            "rejected",
            "credits",
            "p50_ms",
            "p95_ms",
            "p99_ms",
        ]
    )
    for p in series.points:
        writer.writerow(
            [
                p.time.isoformat().replace("+00:00", "Z"),
                p.requests,
                max(p.requests - p.rejected - p.errors, 0),
                p.errors,
                p.rejected,
                p.credits,
                "" if p.p50_ms is None else p.p50_ms,
                "" if p.p95_ms is None else p.p95_ms,
                "" if p.p99_ms is None else p.p99_ms,
            ]
        )
    stamp = (end - timedelta(minutes=1)).strftime("%Y%m%dT%H%MZ")
    name = f"{chosen}-{stamp}" if shown == "live" else f"{shown}-{chosen}-{stamp}"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="usage-{org_id}-{name}.csv"'},
    )
