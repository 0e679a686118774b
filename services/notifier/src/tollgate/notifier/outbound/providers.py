"""SMS providers behind one interface: a Twilio-compatible adapter and a generic
HTTP/JSON adapter an operator configures (URL template, auth header, field mapping,
status mapping).

An adapter sends one message, reads the provider's balance where it has one, and
turns a delivery-report callback into (provider message id, status, error code).
What a provider writes (error codes and messages, message ids) is made storable
(`foreign_text`: no NUL) before it reaches the database. Credentials come unsealed
from `sms_providers.credentials_sealed` only here, held in memory for the call, and
never logged or returned by any API.

Errors: a network failure, a timeout, 429 and 5xx are transient (the queue retries,
honouring `Retry-After`); any other 4xx is permanent (the message fails and is
refunded). Every send carries the Tollgate message id as an idempotency token
(`I-Twilio-Idempotency-Token` for the Twilio shape, `Idempotency-Key` for the
generic one): a re-send after a crash is deduplicated by providers that honour it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Formatter
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from tollgate.contracts.events.notifier import SmsStatus
from tollgate.kit.sealing import Sealer, SealError
from tollgate.notifier.foreign_text import storable
from tollgate.notifier.retry_after import parse_retry_after
from tollgate.notifier.sms import signatures

KINDS = ("twilio", "http")

TWILIO_STATUSES: dict[str, SmsStatus | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": SmsStatus.SENT,
    "delivered": SmsStatus.DELIVERED,
    "read": SmsStatus.DELIVERED,
    "undelivered": SmsStatus.UNDELIVERED,
    "failed": SmsStatus.FAILED,
    "canceled": SmsStatus.FAILED,
}
"""Twilio's MessageStatus → ours (None: no customer-visible change)."""


@dataclass(frozen=True)
class OutgoingSms:
    """One message handed to a provider."""

    message_id: str
    to: str
    from_: str
    text: str
    reference: str | None
    status_callback_url: str | None


@dataclass(frozen=True)
class Accepted:
    """The provider took the message."""

    provider_message_id: str


class ProviderError(Exception):
    """The provider refused or could not be reached."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        transient: bool,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = storable(code[:32])
        self.message = storable(message[:255])
        self.transient = transient
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class ProviderBalance:
    """A provider account's balance as it reports it (a decimal string, its currency)."""

    balance: str
    currency: str


@dataclass(frozen=True)
class StatusReport:
    """A delivery report, verified."""

    provider_message_id: str
    status: SmsStatus | None
    error_code: str | None


class CallbackRefused(Exception):
    """A callback whose signature does not verify, or that cannot be read."""


class SmsProviderClient(Protocol):
    """What the send queue and the callback endpoint need from a provider."""

    async def send(self, sms: OutgoingSms) -> Accepted: ...

    async def balance(self) -> ProviderBalance | None: ...

    def report(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        form: Mapping[str, Sequence[str]],
        now: float,
    ) -> StatusReport: ...


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return json.loads(await response.read())
    except ValueError:
        return None


def _classify(status: int, payload: Any, headers: Mapping[str, str]) -> ProviderError:
    code = str(status)
    message = f"HTTP {status}"
    if isinstance(payload, dict):
        code = str(payload.get("code") or payload.get("error_code") or code)
        message = str(payload.get("message") or payload.get("error") or message)
    transient = status == 429 or status >= 500
    return ProviderError(
        code,
        message,
        transient=transient,
        retry_after_seconds=(
            parse_retry_after(headers.get("Retry-After"), datetime.now(UTC)) if transient else None
        ),
    )


class _HttpClient:
    """One pooled aiohttp session per adapter (the worker keeps adapters)."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TwilioProvider(_HttpClient):
    """Twilio's Messages API (or anything speaking its request and callback shapes).

    config: `base_url` (default https://api.twilio.com), `account_sid`;
    credentials: `auth_token` (Basic auth, and the key of `X-Twilio-Signature`)."""

    def __init__(
        self, config: Mapping[str, Any], credentials: Mapping[str, str], timeout: float = 15.0
    ) -> None:
        super().__init__(timeout)
        self._base = str(config.get("base_url") or "https://api.twilio.com").rstrip("/")
        self._sid = str(config["account_sid"])
        self._token = credentials["auth_token"]

    def _auth(self) -> dict[str, str]:
        return {"Authorization": aiohttp.encode_basic_auth(self._sid, self._token)}

    async def send(self, sms: OutgoingSms) -> Accepted:
        form = {"To": sms.to, "From": sms.from_, "Body": sms.text}
        if sms.status_callback_url:
            form["StatusCallback"] = sms.status_callback_url
        url = f"{self._base}/2010-04-01/Accounts/{quote(self._sid)}/Messages.json"
        try:
            async with self.session().post(
                url,
                data=form,
                headers={**self._auth(), "I-Twilio-Idempotency-Token": sms.message_id},
            ) as response:
                payload = await _json_or_none(response)
                if response.status >= 300:
                    raise _classify(response.status, payload, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError("network", type(exc).__name__, transient=True) from exc
        if not isinstance(payload, dict) or not payload.get("sid"):
            raise ProviderError("bad-response", "No message sid in the answer.", transient=True)
        return Accepted(storable(str(payload["sid"])))

    async def balance(self) -> ProviderBalance | None:
        url = f"{self._base}/2010-04-01/Accounts/{quote(self._sid)}/Balance.json"
        try:
            async with self.session().get(url, headers=self._auth()) as response:
                payload = await _json_or_none(response)
                if response.status >= 300:
                    raise _classify(response.status, payload, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError("network", type(exc).__name__, transient=True) from exc
        if not isinstance(payload, dict) or "balance" not in payload:
            return None
        return ProviderBalance(str(payload["balance"]), str(payload.get("currency", "")))

    def report(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        form: Mapping[str, Sequence[str]],
        now: float,
    ) -> StatusReport:
        if not signatures.twilio_valid(self._token, url, form, headers.get("X-Twilio-Signature")):
            raise CallbackRefused("invalid signature")
        sid = (form.get("MessageSid") or form.get("SmsSid") or [""])[0]
        status = (form.get("MessageStatus") or form.get("SmsStatus") or [""])[0].lower()
        if not sid or status not in TWILIO_STATUSES:
            raise CallbackRefused("not a status callback")
        error = storable((form.get("ErrorCode") or [""])[0][:32]) or None
        return StatusReport(storable(sid), TWILIO_STATUSES[status], error)


def _dig(payload: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(payload, dict):
            return None
        payload = payload.get(part)
    return payload


class HttpJsonProvider(_HttpClient):
    """A provider with a JSON API, described by configuration:

    - `url_template`: e.g. `https://sms.example/v2/send` (placeholders `{to}`, `{from}`,
      `{message_id}` are URL-encoded), `method` (POST);
    - `auth_header`: the header carrying the sealed credential `auth_value`
      (e.g. `Authorization` with `Bearer …`);
    - `fields`: our field → their JSON key (`to`, `from`, `text`, `reference`,
      `message_id`, `callback_url`; dotted keys nest), plus `extra` constant fields;
    - `response_id_field`: where the answer carries their message id;
    - callbacks (`POST /v1/sms/status/http/{provider_id}`, JSON, signed
      `X-Tollgate-Signature` with the sealed `callback_secret`): `callback_id_field`,
      `callback_status_field`, `callback_error_field`, and `status_map` (their status
      → queued/sent/delivered/undelivered/failed; unmapped statuses change nothing);
    - `balance_url`, `balance_field`, `balance_currency` (optional)."""

    def __init__(
        self, config: Mapping[str, Any], credentials: Mapping[str, str], timeout: float = 15.0
    ) -> None:
        super().__init__(timeout)
        self._config = config
        self._auth_header = str(config.get("auth_header") or "")
        self._auth_value = credentials.get("auth_value", "")
        self._callback_secret = credentials.get("callback_secret", "")
        self._status_map = {
            str(m["theirs"]): SmsStatus(m["ours"]) for m in config.get("status_map") or ()
        }

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._auth_header and self._auth_value:
            headers[self._auth_header] = self._auth_value
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    async def send(self, sms: OutgoingSms) -> Accepted:
        values = {
            "to": sms.to,
            "from": sms.from_,
            "text": sms.text,
            "reference": sms.reference,
            "message_id": sms.message_id,
            "callback_url": sms.status_callback_url,
        }
        body: dict[str, Any] = {c["name"]: c["value"] for c in self._config.get("extra") or ()}
        for ours, theirs in dict(self._config.get("fields") or {}).items():
            if values.get(ours) is None:
                continue
            target = body
            *parents, leaf = str(theirs).split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = values[ours]
        url = render_url(str(self._config["url_template"]), values)
        method = str(self._config.get("method") or "POST").upper()
        try:
            async with self.session().request(
                method, url, json=body, headers=self._headers(sms.message_id)
            ) as response:
                payload = await _json_or_none(response)
                if response.status >= 300:
                    raise _classify(response.status, payload, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError("network", type(exc).__name__, transient=True) from exc
        provider_id = _dig(payload, str(self._config.get("response_id_field") or "id"))
        if provider_id in (None, ""):
            raise ProviderError("bad-response", "No message id in the answer.", transient=True)
        return Accepted(storable(str(provider_id)))

    async def balance(self) -> ProviderBalance | None:
        url = self._config.get("balance_url")
        if not url:
            return None
        try:
            async with self.session().get(str(url), headers=self._headers()) as response:
                payload = await _json_or_none(response)
                if response.status >= 300:
                    raise _classify(response.status, payload, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError("network", type(exc).__name__, transient=True) from exc
        value = _dig(payload, str(self._config.get("balance_field") or "balance"))
        if value is None:
            return None
        return ProviderBalance(str(value), str(self._config.get("balance_currency") or ""))

    def report(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        form: Mapping[str, Sequence[str]],
        now: float,
    ) -> StatusReport:
        if not signatures.generic_valid(
            self._callback_secret, headers.get("X-Tollgate-Signature"), body, now
        ):
            raise CallbackRefused("invalid signature")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise CallbackRefused("not JSON") from exc
        provider_id = _dig(payload, str(self._config.get("callback_id_field") or "id"))
        status = _dig(payload, str(self._config.get("callback_status_field") or "status"))
        error = _dig(payload, str(self._config.get("callback_error_field") or "error_code"))
        if provider_id in (None, "") or status is None:
            raise CallbackRefused("not a status callback")
        return StatusReport(
            storable(str(provider_id)),
            self._status_map.get(str(status)),
            storable(str(error)[:32]) if error not in (None, "") else None,
        )


def render_url(template: str, values: Mapping[str, str | None]) -> str:
    """The URL template with `{to}`, `{from}`, `{message_id}` URL-encoded in."""
    out = []
    for literal, field, _, _ in Formatter().parse(template):
        out.append(literal)
        if field is not None:
            out.append(quote(values.get(field) or "", safe=""))
    return "".join(out)


def check_config(
    kind: str, config: Mapping[str, Any], credentials: Mapping[str, str]
) -> str | None:
    """Why a provider configuration cannot work, or None."""
    if kind == "twilio":
        if not config.get("account_sid"):
            return "A Twilio provider needs config.account_sid."
        if not credentials.get("auth_token"):
            return "A Twilio provider needs credentials.auth_token."
        return None
    template = config.get("url_template")
    if not isinstance(template, str) or not template.startswith(("http://", "https://")):
        return "An http provider needs config.url_template (an http(s) URL)."
    try:
        fields = [f for _, f, _, _ in Formatter().parse(template) if f is not None]
    except ValueError:
        return "config.url_template is not a valid template."
    if set(fields) - {"to", "from", "message_id"}:
        return "config.url_template may use only {to}, {from} and {message_id}."
    if not config.get("fields", {}).get("to") or not config.get("fields", {}).get("text"):
        return "An http provider needs config.fields for at least `to` and `text`."
    return None


def stored_credentials(sealer: Sealer, sealed: str) -> dict[str, str] | None:
    """A provider's credentials as stored; None when they were sealed with a key no
    longer configured (an admin must enter them again)."""
    try:
        credentials: dict[str, str] = json.loads(sealer.unseal(sealed))
    except SealError:
        return None
    return credentials


def client_for(
    kind: str, config: Mapping[str, Any], credentials: Mapping[str, str]
) -> TwilioProvider | HttpJsonProvider:
    """The adapter of a provider row."""
    if kind == "twilio":
        return TwilioProvider(config, credentials)
    return HttpJsonProvider(config, credentials)
