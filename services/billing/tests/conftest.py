"""Fixtures of the billing tests: every database they make is a copy of one template
migrated once per session (the kit's test-database strategy, see
`tollgate.kit.testing.databases`), so each test still owns its database and
`factories.migrated` finds it at head already."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tollgate.kit.testing import Harness


@pytest.fixture(scope="session")
def database_factory(tollgate_harness: Harness) -> Callable[[str], str]:
    """`make(prefix)`: a fresh database with the billing schema at head, no rows."""
    return tollgate_harness.database_maker(migrations="tollgate.billing")
