"""The accounts service's sealer (upstream credentials, TOTP seeds, emailed tokens).

Sealing needs `TOLLGATE_ACCOUNTS_SEALING_KEYS`; a route that has to seal something
without it answers 503 with a clear problem rather than storing a secret in the clear.
"""

from __future__ import annotations

import functools

from tollgate.accounts.config import Settings
from tollgate.kit.problems import ServiceUnavailable
from tollgate.kit.sealing import Sealer


@functools.cache
def _sealer(keys: str) -> Sealer:
    return Sealer(keys)


def sealer(settings: Settings) -> Sealer:
    """The sealer for the configured keys; 503 problem when none are configured."""
    configured = _sealer(settings.sealing_keys)
    if not configured.configured:
        raise ServiceUnavailable(
            "sealing-unavailable",
            "Sealing keys are not configured (TOLLGATE_ACCOUNTS_SEALING_KEYS).",
        )
    return configured


def sealing_configured(settings: Settings) -> bool:
    """Whether sealing keys are configured (`sealer` answers 503 when not)."""
    return _sealer(settings.sealing_keys).configured
