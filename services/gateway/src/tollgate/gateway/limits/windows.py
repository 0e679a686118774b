"""The sliding-window limiter shared by the local and the Redis policy.

Each limit (N requests per W seconds) is counted in `SLOTS` sub-windows of W/SLOTS
seconds. A request at time t is admitted when the requests counted in the slots
that overlap the last W seconds - the current slot, the SLOTS-1 before it, and the
partly overlapping oldest one, counted whole - plus one stay within N, for every
limit that applies; then, and only then, the current slot of every limit is
incremented, so a rejected request consumes nothing. Counting the oldest slot
whole makes the check conservative: no W-second interval ever holds more than N
admitted requests (a burst straddling a window boundary cannot pass twice the
limit as with fixed windows, nor 1.2x as with the two-counter approximation); the
price is that capacity frees up to W/SLOTS later than it strictly could.

This module does no I/O: `LocalCounters` keeps the slots in a dict, and the Redis
policy runs the same arithmetic in Lua and hands the slot counts back here to build
the verdict and the headers.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

from tollgate.contracts.events.gateway import RejectionReason

Bucket = tuple[str, int, int]
"""(counter name, limit, window seconds)."""


class Verdict:
    """The outcome of a limit check and what the RateLimit headers say; a refusal also
    carries its answer (status, event reason, problem detail and slug): 429 for a rate
    limit, 402 or 429 for a plan's quota or suspension."""

    __slots__ = (
        "allowed",
        "detail",
        "limit",
        "policy",
        "reason",
        "remaining",
        "reset_s",
        "retry_after_s",
        "slug",
        "state",
        "status",
    )

    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        reset_s: int,
        retry_after_s: int,
        policy: str,
        state: str = "",
        *,
        status: int = 429,
        reason: RejectionReason = RejectionReason.RATE_LIMITED,
        detail: str = "Rate limit exceeded.",
        slug: str = "rate-limited",
    ) -> None:
        self.allowed = allowed
        self.status = status
        self.reason = reason
        self.detail = detail
        self.slug = slug
        self.state = state  # the `RateLimit` field: every policy's remaining and reset
        self.limit = limit
        self.remaining = remaining
        self.reset_s = reset_s
        self.retry_after_s = retry_after_s
        self.policy = policy

    def headers(self) -> list[tuple[str, str]]:
        """`RateLimit` (draft-ietf-httpapi-ratelimit-headers-11: each named policy's
        remaining quota and reset), the earlier drafts' `RateLimit-*` for the tightest
        policy, and the customary `X-RateLimit-*` equivalents."""
        if not self.policy:
            return []  # a refusal no limit explains (a suspended plan)
        limit, remaining, reset = str(self.limit), str(self.remaining), str(self.reset_s)
        return [
            ("RateLimit", self.state),
            ("RateLimit-Limit", limit),
            ("RateLimit-Remaining", remaining),
            ("RateLimit-Reset", reset),
            ("RateLimit-Policy", self.policy),
            ("X-RateLimit-Limit", limit),
            ("X-RateLimit-Remaining", remaining),
            ("X-RateLimit-Reset", reset),
        ]


RATE_LIMIT_FIELDS = frozenset(
    {
        "ratelimit",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    }
)
"""The (lowercase) names `Verdict.headers` sets: an upstream's own copies are replaced."""

_PARTITIONS = {"k": "key", "a": "api", "r": "route", "g": "global", "p": "plan"}
_WINDOW_WORDS = {1: "second", 60: "minute", 3600: "hour", 86400: "day", 30 * 86400: "month"}


_NAMES: dict[tuple[str, int], str] = {}  # (counter kind, window) -> policy name


def policy_name(bucket: Bucket) -> str:
    """The policy's name in the structured fields: what it counts and its window, e.g.
    `key-hour`, `api-minute`, `route-second`, `global-minute`."""
    name, _limit, window = bucket
    found = _NAMES.get((name[:1], window))
    if found is None:
        partition = _PARTITIONS.get(name[:1], "limit")
        found = _NAMES[name[:1], window] = f"{partition}-{_WINDOW_WORDS.get(window, f'{window}s')}"
    return found


def policy_header(buckets: Sequence[Bucket]) -> str:
    """`RateLimit-Policy` (draft-11): every policy that applied, its quota and window,
    e.g. `"key-second";q=10;w=1, "api-hour";q=1000;w=3600`."""
    return ", ".join(f'"{policy_name(bucket)}";q={bucket[1]};w={bucket[2]}' for bucket in buckets)


SLOTS = 10


def verdict(
    buckets: Sequence[Bucket],
    counts: Sequence[Sequence[int]],
    now: float,
    *,
    consumed: bool,
    policy: str | None = None,
) -> Verdict:
    """Build the verdict from each bucket's slot counts (oldest first, `SLOTS + 1` of
    them, the last being the current slot) at `now`; `consumed` says whether the
    request was admitted (counts are from before the increment either way)."""
    best: tuple[int, int, int] | None = None  # (remaining, limit, reset)
    retry_after = 0.0
    state: list[str] = []
    for bucket, slots in zip(buckets, counts, strict=True):
        _name, limit, window = bucket
        counted = sum(slots)
        used = counted + 1 if consumed else counted
        remaining = limit - used if used < limit else 0
        if used:  # until the oldest counted request has left
            reset_s = math.ceil(_frees_after(slots, used - limit + 1, window, now)) or 1
        else:
            reset_s = window
        state.append(f'"{policy_name(bucket)}";r={remaining};t={reset_s}')
        if best is None or remaining < best[0]:
            best = (remaining, limit, reset_s)
        if not consumed and counted + 1 > limit:
            retry_after = max(retry_after, _frees_after(slots, counted + 1 - limit, window, now))
    assert best is not None
    remaining, limit, reset = best
    return Verdict(
        consumed,
        limit,
        remaining,
        reset,
        0 if consumed else max(1, math.ceil(retry_after)),
        policy_header(buckets) if policy is None else policy,
        ", ".join(state),
    )


def _frees_after(slots: Sequence[int], needed: int, window: int, now: float) -> float:
    """Seconds until the oldest slots holding `needed` requests (at least one) have
    left the window; slots as `verdict` takes them, at `now`."""
    # The first slot where the running count reaches `needed` (counts are >= 0).
    offset = bisect_left(list(accumulate(slots)), needed if needed > 1 else 1)
    width = window / SLOTS
    if offset > SLOTS:
        return window
    # That slot leaves when slot current + offset + 1 starts (slots[0] is current - SLOTS);
    # a hair past the boundary, so float rounding cannot land just before it.
    return max(0.0, (int(now // width) + offset + 1) * width - now + width / 1000)


class LocalCounters:
    """Sliding-window slot counters in this process's memory (the `local` policy, and
    the fallback of the `redis` policy)."""

    def __init__(self) -> None:
        # name -> [current slot index, count of slot index-SLOTS, ..., count of slot index]
        self._state: dict[str, list[int]] = {}

    def check(self, buckets: Sequence[Bucket], now: float, policy: str | None = None) -> Verdict:
        """Admit (and count) or reject (counting nothing) one request (`policy`: the
        buckets' `RateLimit-Policy` text, when the caller has it already)."""
        counts: list[list[int]] = []
        states: list[list[int]] = []
        allowed = True
        for name, limit, window in buckets:
            current = int(now // (window / SLOTS))
            state = self._state.get(name)
            if state is None:
                state = self._state[name] = [current] + [0] * (SLOTS + 1)
            elif state[0] != current:
                shift = current - state[0]
                if shift > SLOTS:
                    state[1:] = [0] * (SLOTS + 1)
                elif shift > 0:
                    state[1:] = state[1 + shift :] + [0] * shift
                state[0] = current
            slots = state[1:]
            if sum(slots) >= limit:  # no room for one more
                allowed = False
            counts.append(slots)
            states.append(state)
        if allowed:
            for state in states:
                state[-1] += 1
        return verdict(buckets, counts, now, consumed=allowed, policy=policy)

    def sweep(self, now: float) -> int:
        """Forget counters whose slots have all left their window; returns how many."""
        stale = []
        for name, state in self._state.items():
            window = int(name.rsplit(":", 1)[1])
            if state[0] < int(now // (window / SLOTS)) - SLOTS:
                stale.append(name)
        for name in stale:
            del self._state[name]
        return len(stale)

    def __len__(self) -> int:
        return len(self._state)
