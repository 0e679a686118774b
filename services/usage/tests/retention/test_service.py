"""Which days retention has left whole: what top keys may read as a day minus the rest."""

from __future__ import annotations

from datetime import UTC, datetime

from tollgate.usage.retention.service import RetentionPolicy, complete_days_since

NOW = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)


def test_days_are_whole_from_the_oldest_day_of_minutes_kept() -> None:
    policy = RetentionPolicy(request_log_days=7, minute_days=35, hour_days=400)
    assert complete_days_since(NOW, policy) == datetime(2026, 10, 27, tzinfo=UTC)


def test_hours_kept_for_less_than_minutes_bound_the_whole_days() -> None:
    # The hour cutoff (2026-11-21 05:30) took that day's first hours: the next day is whole.
    policy = RetentionPolicy(request_log_days=7, minute_days=35, hour_days=10)
    assert complete_days_since(NOW, policy) == datetime(2026, 11, 22, tzinfo=UTC)
