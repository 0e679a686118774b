"""A Twilio-compatible SMS provider on loopback, for tests and local runs.

It speaks the documented request and callback shapes: `POST
/2010-04-01/Accounts/{AccountSid}/Messages.json` (form `To`, `From`, `Body`,
`StatusCallback`; HTTP Basic auth with the account sid and auth token; answers
`201 {"sid", "status": "queued", ...}` or `4xx {"code", "message", "status"}`),
`GET …/Balance.json`, and status callbacks (form `MessageSid`, `MessageStatus`,
`ErrorCode`, `AccountSid`, `From`, `To`) signed with `X-Twilio-Signature`, first
`sent`, then `delivered` (or `undelivered` 30005 for numbers listed as unreachable).
Inbound replies are posted to the notifier like Twilio's incoming-message webhook.

Beyond Twilio: `I-Twilio-Idempotency-Token` on a send is honoured (a repeated token
answers the first message instead of sending another), so crash tests can count
what a provider with idempotency would deliver; `posts_by_token` keeps every attempt.
A callback that is not answered 2xx is retried (a few times, shortly): the notifier
may not have recorded the send yet.

`make up` runs it as a program (`python -m tollgate.notifier.outbound.fake_twilio
--port P --auth-token T`, `GET /healthz` for readiness); it logs each message it takes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import secrets
import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tollgate.notifier.sms.signatures import twilio_signature


@dataclass
class FakeMessage:
    sid: str
    to: str
    from_: str
    body: str
    callback: str | None
    token: str | None


@dataclass
class FakeTwilio:
    """The fake provider; `start()` binds 127.0.0.1 on a free port."""

    account_sid: str = "AC" + "f" * 32
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    unreachable: set[str] = field(default_factory=set)
    """Recipients whose messages end `undelivered` (30005)."""
    refused: set[str] = field(default_factory=set)
    """Recipients refused at send (400, 21211: permanent)."""
    flaky: Counter[str] = field(default_factory=Counter)
    """Recipient → how many sends answer 503 first (transient)."""
    callback_delay: float = 0.02
    auto_callbacks: bool = True
    """False: no status callbacks are sent (a test posts them itself)."""
    balance: str = "12.50"
    log_messages: bool = False
    """Print each message taken (a local run's log)."""
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    posts_by_token: Counter[str] = field(default_factory=Counter)
    callbacks_acknowledged: Counter[str] = field(default_factory=Counter)
    callbacks_failed: int = 0
    port: int = 0

    async def start(self) -> None:
        app = web.Application()
        base = "/2010-04-01/Accounts/{sid}"
        app.router.add_post(base + "/Messages.json", self._send)
        app.router.add_get(base + "/Balance.json", self._balance)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._client = aiohttp.ClientSession()
        self._tasks: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        await self._runner.cleanup()  # first: a message sent meanwhile would start a report
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.close()

    @staticmethod
    async def _healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _authorised(self, request: web.Request, sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == sid == self.account_sid and secrets.compare_digest(password, self.auth_token)

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "status": status}, status=status
        )

    async def _send(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if not self._authorised(request, sid):
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        to, from_, body = str(form.get("To", "")), str(form.get("From", "")), form.get("Body")
        token = request.headers.get("I-Twilio-Idempotency-Token")
        if token:
            self.posts_by_token[token] += 1
            for message in self.messages.values():
                if message.token == token:
                    return web.json_response(self._resource(message), status=201)
        if self.flaky[to] > 0:
            self.flaky[to] -= 1
            return self._error(503, 20500, "Service unavailable")
        if not to.startswith("+") or to in self.refused:
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not from_ or body is None:
            return self._error(400, 21602, "Message body is required.")
        callback = form.get("StatusCallback")
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=from_,
            body=str(body),
            callback=str(callback) if callback else None,
            token=token,
        )
        self.messages[message.sid] = message
        if self.log_messages:
            print(f"SMS {message.sid} {message.from_} -> {message.to}: {message.body}", flush=True)
        if message.callback and self.auto_callbacks:
            self._spawn(self._report(message))
        return web.json_response(self._resource(message), status=201)

    def _resource(self, message: FakeMessage) -> dict[str, Any]:
        return {
            "sid": message.sid,
            "account_sid": self.account_sid,
            "to": message.to,
            "from": message.from_,
            "body": message.body,
            "status": "queued",
            "num_segments": "1",
        }

    async def _balance(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if not self._authorised(request, sid):
            return self._error(401, 20003, "Authenticate")
        return web.json_response({"account_sid": sid, "balance": self.balance, "currency": "USD"})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, message: FakeMessage) -> None:
        await asyncio.sleep(self.callback_delay)
        await self.callback(message, "sent")
        await asyncio.sleep(self.callback_delay)
        if message.to in self.unreachable:
            await self.callback(message, "undelivered", "30005")
        else:
            await self.callback(message, "delivered")

    def callback_form(
        self, message: FakeMessage, status: str, error: str = ""
    ) -> tuple[dict[str, str], str]:
        """A status callback's form and its `X-Twilio-Signature`."""
        assert message.callback is not None
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "AccountSid": self.account_sid,
            "From": message.from_,
            "To": message.to,
        }
        if error:
            params["ErrorCode"] = error
        signature = twilio_signature(
            self.auth_token, message.callback, {k: [v] for k, v in params.items()}
        )
        return params, signature

    async def callback(self, message: FakeMessage, status: str, error: str = "") -> bool:
        """POST one signed status callback, retried a few times; True once acknowledged."""
        assert message.callback is not None
        params, _ = self.callback_form(message, status, error)
        return await self.post_signed(message.callback, params, key=f"{message.sid}:{status}")

    async def post_signed(
        self, url: str, params: dict[str, str], *, key: str, attempts: int = 40
    ) -> bool:
        """POST a form signed like Twilio; retried with a short back-off until 2xx."""
        signature = twilio_signature(self.auth_token, url, {k: [v] for k, v in params.items()})
        for attempt in range(attempts):
            try:
                async with self._client.post(
                    url, data=params, headers={"X-Twilio-Signature": signature}
                ) as response:
                    await response.read()
                    if response.status < 300:
                        self.callbacks_acknowledged[key] += 1
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        self.callbacks_failed += 1
        return False

    async def reply(self, url: str, *, from_: str, to: str, body: str) -> bool:
        """A recipient answers: Twilio's incoming-message webhook to `url`."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
        }
        return await self.post_signed(url, params, key=f"reply:{sid}")


async def _serve(port: int, auth_token: str) -> None:
    fake = FakeTwilio(auth_token=auth_token, port=port, log_messages=True)
    await fake.start()
    print(f"fake Twilio on {fake.base_url} (account sid {fake.account_sid})", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        await fake.stop()


def main() -> None:
    """Run the fake as a local provider until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description="A Twilio-compatible SMS provider on loopback.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--auth-token", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.auth_token))


if __name__ == "__main__":
    main()
