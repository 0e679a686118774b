"""Statement rules: which entries belong to a month and how they add up.

Months are calendar months in UTC, by the time an entry was written to the ledger
(debits are written when billing consumes the requests, within seconds of them).
Read-only; never commits.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.statements import repository
from tollgate.billing.statements.schemas import ApiUsage, Statement


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a `YYYY-MM` month in UTC."""
    year, mon = (int(part) for part in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def monthly_statement(session: AsyncSession, org_id: uuid.UUID, month: str) -> Statement:
    """The org's statement for `month` (`YYYY-MM`)."""
    start, end = month_bounds(month)
    totals = await repository.totals_by_kind(session, org_id, start, end)
    usage = [
        ApiUsage(api_id=row.api_id, requests=int(row.requests), credits=int(row.credits))
        for row in await repository.usage_by_api(session, org_id, start, end)
    ]
    return Statement(
        org_id=org_id,
        month=month,
        period_start=start,
        period_end=end,
        opening_balance=await repository.balance_before(session, org_id, start),
        top_ups=totals.get("top_up", 0),
        refunds=totals.get("refund", 0),
        adjustments=totals.get("adjustment", 0),
        expiries=totals.get("expiry", 0),
        usage=usage,
        usage_total=-totals.get("debit", 0),
        closing_balance=await repository.balance_before(session, org_id, end),
    )


def statement_csv(statement: Statement) -> str:
    """The statement as CSV: one line per figure, one per API in usage."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["org_id", "month", "line", "api_id", "requests", "credits"])
    org, month = str(statement.org_id), statement.month

    def line(name: str, credits: int, api_id: str = "", requests: str = "") -> None:
        writer.writerow([org, month, name, api_id, requests, credits])

    line("opening_balance", statement.opening_balance)
    line("top_ups", statement.top_ups)
    line("refunds", statement.refunds)
    line("adjustments", statement.adjustments)
    line("expiries", statement.expiries)
    for usage in statement.usage:
        api = str(usage.api_id) if usage.api_id else ""
        line("usage", -usage.credits, api, str(usage.requests))
    line("usage_total", -statement.usage_total)
    line("closing_balance", statement.closing_balance)
    return out.getvalue()
