"""An org's plan as the request path needs it, built once from each `PlanState`.

A `PlanRecord` holds what a decision reads per request, pre-computed: whether the org
is suspended, its included requests and what happens past them, the plan-wide
windows (as limiter buckets, shared by every key of the org) and the current period
as epoch seconds. No I/O here.
"""

from __future__ import annotations

from tollgate.contracts.events.billing import PastQuota, PlanState, PlanStatus
from tollgate.gateway.registry.records import Window, limit_windows


class PlanRecord:
    """The org's plan: quota, past-quota behaviour, plan-wide limits, suspension."""

    __slots__ = (
        "buckets",
        "org_id",
        "past_quota",
        "period_end",
        "period_start",
        "plan_id",
        "quota",
        "quota_key",
        "suspended",
        "test_buckets",
        "version",
    )

    def __init__(self, event: PlanState) -> None:
        self.org_id = str(event.org_id)
        self.plan_id = str(event.plan_id)
        self.version = event.version
        self.suspended = event.status is PlanStatus.SUSPENDED
        self.quota = event.included_requests
        self.past_quota = event.past_quota
        self.period_start = event.period_start.timestamp()
        self.period_end = event.period_end.timestamp()
        # The quota counter of this org and period: a new period (or a re-dated one)
        # starts from zero, an upgrade within the period keeps counting.
        self.quota_key = f"{self.org_id}:{int(self.period_start)}"
        windows: tuple[Window, ...] = limit_windows(event.rate_limits)
        self.buckets: tuple[tuple[str, int, int], ...] = tuple(
            (f"p:{self.org_id}:{w}", n, w) for n, w in windows
        )
        # The same windows for test keys' calls, counted apart (see `buckets_for`).
        self.test_buckets: tuple[tuple[str, int, int], ...] = tuple(
            (f"p:{self.org_id}:test:{w}", n, w) for n, w in windows
        )

    @property
    def hard_quota(self) -> bool:
        """True when requests past the quota are refused (not charged as overage)."""
        return self.quota is not None and self.past_quota is not PastQuota.OVERAGE
