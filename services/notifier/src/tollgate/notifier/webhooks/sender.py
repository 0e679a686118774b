"""One HTTP attempt of a webhook: sign, POST, classify. No database here.

2xx is success; anything else (3xx included: redirects are never followed) is a
failure. The response body is kept truncated for the delivery log (NUL made U+FFFD:
the log is PostgreSQL text). `Retry-After`
(seconds or an HTTP date) is parsed for the scheduler. Every connection goes
through the SSRF guard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from tollgate.kit.netpolicy import DestinationRefused, NetworkPolicy
from tollgate.notifier.foreign_text import storable
from tollgate.notifier.retry_after import parse_retry_after
from tollgate.notifier.webhooks.signing import signature_header
from tollgate.notifier.webhooks.ssrf import GuardedResolver, refuse_literal_host

log = logging.getLogger(__name__)

BLOCKED = "blocked: the destination is not allowed (a private, loopback or reserved address)"

BODY_LOG_LIMIT = 2048
USER_AGENT = "Tollgate-Webhooks/1"


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt produced."""

    succeeded: bool
    status: int | None
    duration_ms: int
    response_body: str
    error: str | None
    retry_after_seconds: float | None


class WebhookSender:
    """Holds the pooled, SSRF-guarded HTTP session of the webhook workers."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        policy: NetworkPolicy | None = None,
        resolver: GuardedResolver | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._policy = policy or NetworkPolicy()
        self._resolver = resolver or GuardedResolver(self._policy)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver, limit=200, limit_per_host=20)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, *, url: str, message_id: str, timestamp: int, body: str, secrets: list[str]
    ) -> AttemptOutcome:
        """POST `body` to `url`, signed with every secret in `secrets`."""
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, message_id, timestamp, body),
        }
        started = time.monotonic()
        try:
            parsed = URL(url)
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise DestinationRefused("only http(s) URLs with a host")
            refuse_literal_host(parsed.host, self._policy)
            async with self._client().post(
                parsed, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(BODY_LOG_LIMIT)
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                )
        except DestinationRefused as exc:
            # The reason (which address a name resolves to) is the operator's: shown to
            # the customer it maps internal names to addresses.
            log.info("webhook destination refused", extra={"reason": str(exc)})
            return _failure(started, BLOCKED)
        except TimeoutError:
            return _failure(started, "timeout")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return _failure(started, storable(f"{type(exc).__name__}: {exc}"[:500]))
        except asyncio.CancelledError:
            raise
        return AttemptOutcome(
            succeeded=200 <= status < 300,
            status=status,
            duration_ms=_elapsed_ms(started),
            response_body=storable(raw.decode("utf-8", errors="replace")),
            error=None,
            retry_after_seconds=retry_after,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _failure(started: float, error: str) -> AttemptOutcome:
    return AttemptOutcome(
        succeeded=False,
        status=None,
        duration_ms=_elapsed_ms(started),
        response_body="",
        error=error,
        retry_after_seconds=None,
    )
