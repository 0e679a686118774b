"""Where mails go: Resend's HTTP API, or files for local runs.

`ResendBackend` posts `POST {base}/emails` with a Bearer key and an
`Idempotency-Key` equal to the queued message's id, so a retry after a timeout or a
crash never sends twice. 429 and 5xx (and network errors) are retryable; other 4xx
are permanent; what Resend answers is kept with NUL made U+FFFD (`foreign_text`).
`FileBackend` writes each mail as `<id>.txt` and `<id>.html` under
a directory and logs the path (never the body: it may carry a reset link).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import aiohttp

from tollgate.notifier.email.templates import RenderedEmail
from tollgate.notifier.foreign_text import storable
from tollgate.notifier.retry_after import parse_retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendResult:
    """Outcome of handing one mail to a backend."""

    sent: bool
    retryable: bool = False
    provider_id: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None


class EmailBackend(Protocol):
    """Sends one rendered mail; `idempotency_key` is stable across retries."""

    async def send(
        self, *, sender: str, to: str, mail: RenderedEmail, idempotency_key: str
    ) -> SendResult: ...

    async def close(self) -> None: ...


class ResendBackend:
    """Resend HTTP API client (https://resend.com/docs/api-reference/emails/send-email)."""

    def __init__(self, *, base_url: str, api_key: str, timeout_seconds: float = 15.0) -> None:
        self._url = base_url.rstrip("/") + "/emails"
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self, *, sender: str, to: str, mail: RenderedEmail, idempotency_key: str
    ) -> SendResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        payload = {
            "from": sender,
            "to": [to],
            "subject": mail.subject,
            "html": mail.html,
            "text": mail.text,
        }
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(self._url, json=payload, headers=headers) as response:
                status = response.status
                raw = await response.content.read(2048)
                text = storable(raw.decode("utf-8", errors="replace"))
                provider_id = None
                if 200 <= status < 300:
                    try:
                        provider_id = str(_json_object(text).get("id") or "") or None
                    except ValueError:
                        provider_id = None
                    return SendResult(sent=True, provider_id=provider_id)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = storable(f"{type(exc).__name__}: {exc}"[:500])
            return SendResult(sent=False, retryable=True, error=error)
        return SendResult(
            sent=False,
            retryable=status == 429 or status >= 500,
            error=f"HTTP {status}: {text[:500]}",
            retry_after_seconds=retry_after,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_object(text: str) -> dict[str, object]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


class FileBackend:
    """Writes mails to `<dir>/<id>.txt|.html` for local runs (the `log` backend)."""

    def __init__(self, directory: str) -> None:
        self._dir = Path(directory)

    async def send(
        self, *, sender: str, to: str, mail: RenderedEmail, idempotency_key: str
    ) -> SendResult:
        header = f"From: {sender}\nTo: {to}\nSubject: {mail.subject}\n\n"
        text_path = self._dir / f"{idempotency_key}.txt"
        await asyncio.to_thread(self._write, text_path, header + mail.text, mail.html)
        log.info(
            "email written",
            extra={"to": to, "subject": mail.subject, "path": str(text_path.resolve())},
        )
        return SendResult(sent=True, provider_id=f"file:{text_path.name}")

    def _write(self, text_path: Path, text: str, html: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        text_path.write_text(text, encoding="utf-8")
        text_path.with_suffix(".html").write_text(html, encoding="utf-8")

    async def close(self) -> None:
        return None
