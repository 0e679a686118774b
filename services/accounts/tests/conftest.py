"""Fixtures of the accounts tests: one migrated database for the session, and a
log capture around every test that fails it when a secret the test handled (a
password, a raw key, a refresh token, an upstream credential) shows up in any log
record, formatted or not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from tollgate.kit.testing import Harness

from .factories import SECRETS


@pytest.fixture(scope="session")
def database_factory(tollgate_harness: Harness) -> Callable[[str], str]:
    """`make(prefix)`: a fresh database with the accounts schema at head, no rows (a copy
    of one template migrated once per session; see `tollgate.kit.testing.databases`)."""
    return tollgate_harness.database_maker(migrations="tollgate.accounts")


@pytest.fixture(scope="session")
def accounts_db(database_factory: Callable[[str], str]) -> str:
    """A database with the accounts migrations applied, shared by the tests (they use
    unique emails, org names and slugs, so they never see each other's rows)."""
    return database_factory("accounts")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.lines.append(f"{message} {record.__dict__!r}")


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[None]:
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    quiet = logging.getLogger("aiokafka")
    quiet_level = quiet.level
    quiet.setLevel(logging.INFO)
    SECRETS.clear()
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)
        quiet.setLevel(quiet_level)
    text = "\n".join(capture.lines)
    leaked = [s[:12] + "…" for s in SECRETS if s and s in text]
    SECRETS.clear()
    assert not leaked, f"secrets found in log records: {leaked}"
