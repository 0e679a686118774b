"""What request handlers need besides the database: settings, sealer, clock, the
network policy of webhook URLs (with the operator's allowlist) and the SMS router to
wake. Built once in the lifespan (`app.state.notifier`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from tollgate.kit.netpolicy import NetworkPolicy
from tollgate.kit.problems import ServiceUnavailable
from tollgate.kit.sealing import Sealer
from tollgate.kit.upstream_identity import IdentityVerifier
from tollgate.notifier.clock import Clock
from tollgate.notifier.config import Settings
from tollgate.notifier.outbound.credit import OrgBalances

log = logging.getLogger(__name__)


def sealer_for(settings: Settings) -> Sealer:
    """The sealer of the configured keys (warned about when there are none)."""
    sealer = Sealer(settings.sealing_keys)
    if not sealer.configured:
        log.warning("no sealing keys configured: webhooks and token emails are unavailable")
    return sealer


@dataclass
class NotifierState:
    """Shared, long-lived objects of a running notifier."""

    settings: Settings
    sealer: Sealer
    clock: Clock
    network_policy: NetworkPolicy
    wake_sms_router: object | None = None
    wake_sms_sender: object | None = None
    sms_balances: OrgBalances = field(default_factory=OrgBalances)
    _identity: IdentityVerifier | None = None

    @property
    def identity(self) -> IdentityVerifier:
        """Verifier of the gateway's signed caller identity (one per process: it
        remembers the request ids it accepted, refusing replays)."""
        if self._identity is None:
            self._identity = IdentityVerifier(
                self.settings.gateway_identity_secrets.get_secret_value(),
                max_skew_s=self.settings.gateway_identity_max_skew_seconds,
            )
        return self._identity

    def sms_queued(self) -> None:
        """Tell the send queue a message is waiting."""
        wake = self.wake_sms_sender
        if callable(wake):
            wake()

    def require_sealing(self) -> None:
        """503 when secrets cannot be sealed (no keys configured)."""
        if not self.sealer.configured:
            raise ServiceUnavailable(
                "sealing-unavailable", "Webhook secrets need sealing keys configured."
            )

    @property
    def source(self) -> str:
        """CloudEvents `source` of the events this instance publishes."""
        return f"tollgate/notifier/{self.settings.instance_id}"

    def sms_received(self) -> None:
        """Tell the router a message is waiting."""
        wake = self.wake_sms_router
        if callable(wake):
            wake()


def _state(request: Request) -> NotifierState:
    state: NotifierState = request.app.state.notifier
    return state


Notifier = Annotated[NotifierState, Depends(_state)]
"""FastAPI dependency: the running notifier's shared objects."""
