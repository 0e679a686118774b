"""The status rule the gateway enforces."""

from __future__ import annotations

import pytest

from tollgate.billing.balances.service import balance_status
from tollgate.contracts.events.billing import BalanceMode, BalanceStatus

PRE, POST = BalanceMode.PREPAID, BalanceMode.POSTPAID
OK, LOW, OUT = BalanceStatus.OK, BalanceStatus.LOW, BalanceStatus.EXHAUSTED


@pytest.mark.parametrize(
    ("balance", "mode", "low", "reserve", "status"),
    [
        (1001, PRE, 1000, 0, OK),
        (1000, PRE, 1000, 0, LOW),
        (1, PRE, 1000, 0, LOW),
        (0, PRE, 1000, 0, OUT),
        (-5, PRE, 1000, 0, OUT),
        (50, PRE, 1000, 50, OUT),
        (51, PRE, 1000, 50, LOW),
        (50, POST, 1000, 50, LOW),  # the reserve only stops prepaid orgs early
        (-5, POST, 1000, 0, OUT),
        (5, PRE, 0, 0, OK),
    ],
)
def test_balance_status(
    balance: int, mode: BalanceMode, low: int, reserve: int, status: BalanceStatus
) -> None:
    assert balance_status(balance, mode=mode, low_threshold=low, reserve=reserve) is status
