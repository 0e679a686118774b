"""Who may see what: every usage route is scoped to one org the caller names.

Members see their org (any role, viewer and up); platform admins see every org, and
may leave the org out to see all traffic, including rejections that could not be tied
to an org. A caller naming an org it is not in gets 404, never a hint it exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tollgate.kit.auth import Principal, Role, authorize_org
from tollgate.kit.problems import Unprocessable


def org_scope(principal: Principal, org_id: uuid.UUID | None) -> uuid.UUID | None:
    """The org the request is limited to (None: every org, admins only)."""
    if org_id is None:
        if principal.is_admin:
            return None
        raise Unprocessable("org-required", "Name the organisation with org_id.")
    authorize_org(principal, org_id, Role.viewer)
    return org_id


def can_see(principal: Principal, org_id: uuid.UUID | None) -> bool:
    """Whether the caller may see a record of `org_id` (None: org unknown, admins only)."""
    if principal.is_admin:
        return True
    return org_id is not None and principal.role_in(org_id) is not None


@dataclass(frozen=True)
class TimeRange:
    """A half-open UTC range [start, end), minute-aligned."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime) -> datetime:
    floored = _floor_minute(moment)
    return floored if floored == moment else floored + timedelta(minutes=1)


def time_range(
    start: datetime | None,
    end: datetime | None,
    *,
    default: timedelta,
    longest: timedelta,
    now: datetime | None = None,
) -> TimeRange:
    """Validate a query's range: defaults to the last `default`, must be non-empty and
    at most `longest`; `from` rounds down and `to` up to whole minutes."""
    for given in (start, end):
        if given is not None and not _EARLIEST <= given <= _LATEST:
            raise Unprocessable("invalid-range", "Times must be in 2000 to 2199.")
    moment = now or datetime.now(UTC)
    end_at = _ceil_minute(end or moment)
    start_at = _floor_minute(start or (end_at - default))
    if start_at >= end_at:
        raise Unprocessable("invalid-range", "`from` must be before `to`.")
    if end_at - start_at > longest:
        raise Unprocessable(
            "range-too-long",
            f"The range may span at most {longest.days} days and {longest.seconds // 3600} hours.",
        )
    return TimeRange(start_at, end_at)
