"""How `workers` and the limit policy resolve: exact limits unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tollgate.gateway.config import Settings, usable_cpus


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the process environment sets would decide instead of these tests.
    for name in ("WORKERS", "RATE_LIMIT_POLICY", "REDIS_URL", "LOCAL_LIMITS_PER_WORKER"):
        monkeypatch.delenv(f"TOLLGATE_GATEWAY_{name}", raising=False)


def test_without_redis_one_process_counts_limits_locally(tmp_path: Path) -> None:
    settings = Settings(spool_dir=tmp_path)
    assert (settings.workers, settings.rate_limit_policy) == (1, "local")
    assert settings.spool_path == tmp_path


def test_with_redis_every_core_serves_and_limits_are_shared(tmp_path: Path) -> None:
    settings = Settings(spool_dir=tmp_path, redis_url="redis://r:6379/0")
    assert settings.workers == usable_cpus()
    assert settings.rate_limit_policy == ("redis" if usable_cpus() > 1 else "local")


def test_local_limits_with_workers_need_consent(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="local limit policy"):
        Settings(spool_dir=tmp_path, workers=2)
    settings = Settings(spool_dir=tmp_path, workers=2, local_limits_per_worker=True)
    assert settings.rate_limit_policy == "local"
    assert Settings(spool_dir=tmp_path, workers=2, rate_limit_policy="redis").workers == 2


def test_a_worker_has_its_own_spool(tmp_path: Path) -> None:
    settings = Settings(spool_dir=tmp_path, worker_slot=3)
    assert settings.spool_path == tmp_path / "worker-3"
