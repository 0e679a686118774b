"""A fake of the backing services' REST APIs for in-process console tests: just the
routes the console calls on accounts, usage, billing and notifier, with their real
shapes (checked against the real services by the system tests in
tests/system/test_console_*.py)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI

from tollgate.console.app import create_app
from tollgate.console.config import Settings

NOW = "2026-11-29T10:00:00Z"
PASSWORD = "correct-horse-battery"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def problem(status: int, title: str, detail: str = "", **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def member_body(name: str, role: str) -> dict[str, Any]:
    return {
        "user_id": str(uuid.uuid4()),
        "email": f"{role}@example.com",
        "name": name,
        "role": role,
        "joined_at": NOW,
    }


def key_body(key_id: str, org_id: str, name: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": key_id,
        "org_id": org_id,
        "name": name,
        "prefix": "tg_live_ab",
        "last4": "wxyz",
        "environment": "live",
        "enabled": True,
        "revoked": False,
        "revoked_at": None,
        "expires_at": None,
        "scopes": [],
        "allowed_api_ids": [],
        "limits": {"per_day": 1000},
        "ip_allowlist": [],
        "metadata": {},
        "retired_secrets": [],
        "created_by": None,
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
        **changes,
    }


@dataclass
class FakeBackends:
    """State and behaviour of accounts, usage and billing, as far as the console sees."""

    org_name: str = "Acme"
    user_name: str = "Dev"
    role: str = "owner"
    totp: bool = False
    down: set[str] = field(default_factory=set)
    down_after_write: set[str] = field(default_factory=set)  # go down once a write went through
    deprecation_notices: list[dict[str, Any]] = field(default_factory=list)  # usage's
    org_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    refreshes: int = 0
    spent_refresh_tokens: set[str] = field(default_factory=set)
    refresh_family_revoked: bool = False
    logged_out: list[str] = field(default_factory=list)
    token_ttl: int = 900
    keys_next_cursor: str | None = None
    cursors_seen: list[str] = field(default_factory=list)
    admin: bool = False
    unlisted_orgs: dict[str, dict[str, Any]] = field(default_factory=dict)  # beyond /v1/orgs
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitations: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit_params: list[dict[str, str]] = field(default_factory=list)
    reset_requests: list[str] = field(default_factory=list)
    live_tokens: list[str] = field(default_factory=list)
    live_params: list[dict[str, str]] = field(default_factory=list)
    live_refused: bool = False
    live_held: asyncio.Event | None = None  # set: live streams stay open until it is set
    live_opened: asyncio.Event = field(default_factory=asyncio.Event)  # usage answered one
    low_threshold: int = 1000
    ledger: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_values: dict[str, list[str]] = field(default_factory=dict)
    usage_params: list[dict[str, str]] = field(default_factory=list)
    summary_params: list[dict[str, str]] = field(default_factory=list)
    log_params: list[dict[str, str]] = field(default_factory=list)
    apis: list[dict[str, Any]] = field(default_factory=list)
    changelogs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by API id
    catalog: list[dict[str, Any]] = field(default_factory=list)  # accounts' /v1/catalog
    catalog_documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # by slug
    document_languages: list[str] = field(default_factory=list)  # `lang` of each request
    catalog_public: bool = True
    catalog_changelogs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by slug
    email_verified: bool = True
    key_bodies: list[dict[str, Any]] = field(default_factory=list)
    portal_public: bool = True
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    emails: list[dict[str, Any]] = field(default_factory=list)
    email_retries: list[str] = field(default_factory=list)
    log_items: list[dict[str, Any]] = field(default_factory=list)
    key_list_params: list[dict[str, str]] = field(default_factory=list)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    org_plan_id: str | None = None
    next_plan_id: str | None = None
    plan_status: str = "active"
    provider: str = "manual"
    checkouts: list[str] = field(default_factory=list)
    purchases: list[dict[str, Any]] = field(default_factory=list)
    sms: dict[str, dict[str, Any]] = field(default_factory=dict)
    sms_prices: dict[str, int] = field(default_factory=dict)
    sms_params: list[dict[str, str]] = field(default_factory=list)
    contacts: list[dict[str, str]] = field(default_factory=list)
    auto_top_up: dict[str, Any] = field(default_factory=lambda: dict(AUTO_TOP_UP))
    inbox: list[dict[str, Any]] = field(default_factory=list)
    sms_numbers: list[dict[str, Any]] = field(default_factory=list)
    keyword_rules: list[dict[str, Any]] = field(default_factory=list)
    sms_providers: list[dict[str, Any]] = field(default_factory=list)
    provider_patches: list[dict[str, Any]] = field(default_factory=list)
    provider_adds: list[dict[str, Any]] = field(default_factory=list)
    provider_tests: list[dict[str, Any]] = field(default_factory=list)
    provider_balances: dict[str, Any] = field(default_factory=dict)  # by id; absent: 503
    admin_sms_params: list[dict[str, str]] = field(default_factory=list)

    def tokens(self) -> httpx.Response:
        n = self.refreshes
        return httpx.Response(
            200,
            json={
                "access_token": f"access-{n}",
                "token_type": "bearer",
                "expires_in": self.token_ttl,
                "refresh_token": f"refresh-{n}",
                "refresh_expires_in": 86400,
            },
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        service = request.url.host.split(".")[0]
        path = request.url.path
        self.calls.append((service, request.method, path))
        if service in self.down:
            raise httpx.ConnectError("down", request=request)
        public = path.startswith("/v1/auth/") or (
            self.catalog_public and path.startswith("/v1/catalog")
        )
        if service != "accounts" or not public:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer access-"):
                return problem(401, "Unauthorized")
        route = getattr(self, f"{service}_{request.method.lower()}")
        answer: httpx.Response = route(request, path)
        if request.method != "GET" and answer.status_code < 400:
            self.down |= self.down_after_write
        return answer

    # --- accounts ---------------------------------------------------------------------

    def accounts_post(self, request: httpx.Request, path: str) -> httpx.Response:
        admin_action = re.fullmatch(r"/v1/users/([^/]+)/(deactivate|reactivate)", path)
        if admin_action:
            if not self.admin:
                return problem(403, "Forbidden", "Platform admins only.")
            user = self.users.get(admin_action.group(1))
            if user is None:
                return problem(404, "Not Found", "No such user.")
            if user["email"] == "dev@example.com":
                return problem(409, "Conflict", "You cannot deactivate yourself.")
            user["is_active"] = admin_action.group(2) == "reactivate"
            return httpx.Response(200, json=user)
        if path == "/v1/auth/token":
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            if form.get("password") != PASSWORD:
                return problem(401, "Unauthorized", "Invalid email or password.")
            if self.totp and form.get("otp") != "123456":
                return problem(401, "Unauthorized", "Code required.", mfa_required=True)
            self.refresh_family_revoked = False  # a new session family
            return self.tokens()
        if path == "/v1/auth/refresh":
            # Accounts' rule (identity/service.py `refresh`): a refresh token works once;
            # presenting a spent one means it leaked, and the whole family is revoked.
            token = json.loads(request.content)["refresh_token"]
            if self.refresh_family_revoked:
                return problem(401, "Unauthorized", "Invalid refresh token.")
            if token in self.spent_refresh_tokens:
                self.refresh_family_revoked = True
                return problem(
                    401, "Unauthorized", "Refresh token reuse detected; the session was revoked."
                )
            self.spent_refresh_tokens.add(token)
            self.refreshes += 1
            return self.tokens()
        if path == "/v1/auth/logout":
            body = json.loads(request.content)
            self.logged_out.append(
                body["refresh_token"] + (" everywhere" if body.get("everywhere") else "")
            )
            return httpx.Response(204)
        if path == "/v1/auth/totp/enroll":
            secret = "JBSWY3DPEHPK3PXP"
            uri = f"otpauth://totp/Tollgate:dev%40example.com?secret={secret}&issuer=Tollgate"
            return httpx.Response(200, json={"secret": secret, "otpauth_uri": uri})
        if path == "/v1/auth/totp/verify":
            body = json.loads(request.content)
            if body["password"] != PASSWORD:
                slug = "https://tollgate.dev/problems/invalid-credentials"
                return problem(400, "Bad Request", "Wrong password.", type=slug)
            if body["code"] != "123456":
                return problem(400, "Bad Request", "Invalid one-time code.")
            self.totp = True
            return httpx.Response(200, json={"recovery_codes": ["aaaa-bbbb", "cccc-dddd"]})
        if path == "/v1/auth/totp/disable":
            body = json.loads(request.content)
            if body["password"] != PASSWORD:
                return problem(400, "Bad Request", "Wrong password.")
            self.totp = False
            return httpx.Response(204)
        if path == "/v1/auth/password-reset":
            self.reset_requests.append(json.loads(request.content)["email"])
            return httpx.Response(202, json={"detail": "sent"})
        if path == f"/v1/orgs/{self.org_id}/keys":
            if self.role == "viewer":
                return problem(403, "Forbidden", "Requires the developer role or higher.")
            body = json.loads(request.content)
            self.key_bodies.append(body)
            key_id = str(uuid.uuid4())
            environment = body.get("environment", "live")
            self.keys[key_id] = key_body(
                key_id,
                self.org_id,
                body["name"],
                environment=environment,
                scopes=body.get("scopes", []),
                allowed_api_ids=body.get("allowed_api_ids", []),
            )
            raw = f"tg_{environment}_RAWSECRET"
            return httpx.Response(201, json={**self.keys[key_id], "key": raw})
        if path == f"/v1/orgs/{self.org_id}/invitations":
            if self.role != "owner":
                return problem(403, "Forbidden", "Requires the owner role.")
            body = json.loads(request.content)
            if "@" not in body["email"]:
                errors = [{"loc": ["body", "email"], "msg": "not an email address"}]
                return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
            invitation = {
                "id": str(uuid.uuid4()),
                "org_id": self.org_id,
                "email": body["email"],
                "role": body["role"],
                "invited_by": str(uuid.uuid4()),
                "created_at": NOW,
                "expires_at": "2999-01-01T00:00:00Z",
                "accepted_at": None,
                "revoked_at": None,
            }
            self.invitations[invitation["id"]] = invitation
            return httpx.Response(201, json=invitation)
        match = re.fullmatch(r"/v1/keys/([^/]+)/(revoke|rotate)", path)
        if match:
            if self.role == "viewer":
                return problem(403, "Forbidden", "Requires the developer role or higher.")
            key = self.keys[match.group(1)]
            if match.group(2) == "revoke":
                key.update(revoked=True, revoked_at=NOW, enabled=False)
                return httpx.Response(200, json=key)
            return httpx.Response(200, json={**key, "key": "tg_live_ROTATED"})
        return problem(404, "Not Found")

    def accounts_delete(self, request: httpx.Request, path: str) -> httpx.Response:
        if self.role != "owner":
            return problem(403, "Forbidden", "Requires the owner role.")
        kind, item = path.rsplit("/", 2)[1:]
        if kind == "members":
            self.members.pop(item)
        else:
            self.invitations[item]["revoked_at"] = NOW
        return httpx.Response(204)

    def accounts_patch(self, request: httpx.Request, path: str) -> httpx.Response:
        if "/members/" in path:
            if self.role != "owner":
                return problem(403, "Forbidden", "Requires the owner role.")
            member = self.members[path.rsplit("/", 1)[1]]
            role = json.loads(request.content)["role"]
            if role not in ("owner", "developer", "viewer"):
                errors = [{"loc": ["body", "role"], "msg": "not a role"}]
                return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
            member["role"] = role
            return httpx.Response(200, json=member)
        key = self.keys[path.rsplit("/", 1)[1]]
        key.update(json.loads(request.content))
        return httpx.Response(200, json=key)

    def accounts_get(self, request: httpx.Request, path: str) -> httpx.Response:
        if path == "/v1/auth/me":
            me = {
                "id": str(uuid.uuid4()),
                "email": "dev@example.com",
                "name": self.user_name,
                "locale": "en",
                "is_admin": self.admin,
                "totp_enabled": self.totp,
                "email_verified": self.email_verified,
                "created_at": NOW,
                "orgs": [{"org_id": self.org_id, "role": self.role}],
            }
            return httpx.Response(200, json=me)
        if path == "/v1/orgs":
            org = {"id": self.org_id, "name": self.org_name, "created_at": NOW}
            return httpx.Response(200, json={"items": [org], "next_cursor": None})
        one_org = re.fullmatch(r"/v1/orgs/([0-9a-f-]{36})", path)
        if one_org:  # platform admins read any org (the fake user is a member of one)
            found = self.unlisted_orgs.get(one_org.group(1))
            if found is None or not self.admin:
                return problem(404, "Not Found", "No such organisation.")
            return httpx.Response(200, json=found)
        if path == f"/v1/orgs/{self.org_id}/keys":
            self.key_list_params.append(dict(request.url.params))
            if "cursor" in request.url.params:
                self.cursors_seen.append(request.url.params["cursor"])
            page = {"items": list(self.keys.values()), "next_cursor": self.keys_next_cursor}
            return httpx.Response(200, json=page)
        if path == f"/v1/orgs/{self.org_id}/members":
            return httpx.Response(
                200, json={"items": list(self.members.values()), "next_cursor": None}
            )
        if path == f"/v1/orgs/{self.org_id}/invitations":
            page = {"items": list(self.invitations.values()), "next_cursor": None}
            return httpx.Response(200, json=page)
        if path == "/v1/audit":
            self.audit_params.append(dict(request.url.params))
            if self.role != "owner":
                return problem(403, "Forbidden", "Requires the owner role.")
            entry = {
                "id": 1,
                "at": NOW,
                "actor_id": None,
                "org_id": self.org_id,
                "action": "key.created",
                "target_type": "key",
                "target_id": "k1",
                "diff": {"name": "<script>alert(1)</script>"},
                "ip": None,
                "request_id": None,
            }
            return httpx.Response(200, json={"items": [entry], "next_cursor": None})
        if path.startswith("/v1/keys/"):
            key = self.keys.get(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=key) if key else problem(404, "Not Found")
        if path == "/v1/apis":
            return httpx.Response(200, json={"items": self.apis, "next_cursor": None})
        if re.fullmatch(r"/v1/apis/[0-9a-f-]{36}/changelog", path):
            entries = self.changelogs.get(path.split("/")[3], [])
            cursor = request.url.params.get("cursor")
            start = int(cursor) if cursor else 0
            nxt = str(start + 1) if start + 1 < len(entries) else None
            return httpx.Response(
                200, json={"items": entries[start : start + 1], "next_cursor": nxt}
            )
        if re.fullmatch(r"/v1/apis/[0-9a-f-]{36}", path):
            api = next((a for a in self.apis if a["id"] == path.rsplit("/", 1)[1]), None)
            return httpx.Response(200, json=api) if api else problem(404, "Not Found")
        if path == "/v1/users":
            if not self.admin:
                return problem(403, "Forbidden", "Platform admins only.")
            users = list(self.users.values())
            prefix = request.url.params.get("email_prefix")
            if prefix:
                users = [u for u in users if u["email"].startswith(prefix)]
            if "active" in request.url.params:
                wanted = request.url.params["active"] == "true"
                users = [u for u in users if u["is_active"] == wanted]
            return httpx.Response(200, json={"items": users, "next_cursor": None})
        if path == "/v1/catalog":
            return httpx.Response(200, json={"items": self.catalog})
        if path.startswith("/v1/catalog/"):
            slug = path.split("/")[3]
            entry = next((a for a in self.catalog if a["slug"] == slug), None)
            if entry is None:
                return problem(404, "Not Found")
            if path.endswith("/openapi"):
                self.document_languages.append(request.url.params.get("lang", ""))
                return httpx.Response(200, json=self.catalog_documents.get(slug, {}))
            if path.endswith("/changelog"):
                entries = self.catalog_changelogs.get(slug, [])
                cursor = request.url.params.get("cursor")
                start = int(cursor) if cursor else 0
                nxt = str(start + 1) if start + 1 < len(entries) else None
                page = {"items": entries[start : start + 1], "next_cursor": nxt}
                return httpx.Response(200, json=page)
            return httpx.Response(200, json=entry)
        return problem(404, "Not Found")

    # --- usage and billing --------------------------------------------------------------

    def usage_get(self, request: httpx.Request, path: str) -> httpx.Response:
        latency = {"mean_ms": 12.0, "p50_ms": 10.0, "p90_ms": 20.0, "p95_ms": 31.5, "p99_ms": 50.0}
        totals = {
            "requests": 1234,
            "completed": 1200,
            "rejected": 34,
            "errors": 12,
            "client_errors": 10,
            "server_errors": 2,
            "error_rate": 0.01,
            "bytes_in": 1,
            "bytes_out": 2,
            "credits": 1200,
            "latency": latency,
        }
        if path.endswith("/deprecation-notices"):
            if not self.admin:
                return problem(403, "Forbidden", "Platform admins only.")
            return httpx.Response(
                200, json={"items": self.deprecation_notices, "next_cursor": None}
            )
        if path == "/v1/usage/live":
            self.live_tokens.append(request.headers["authorization"])
            self.live_params.append(dict(request.url.params))
            if self.live_refused:
                return problem(429, "Too Many Requests", "Too many live streams.")
            frame = b'event: counts\ndata: {"seconds": [{"second": "' + NOW.encode()
            frame += b'", "requests": 3, "errors": 1, "rejected": 0}]}\n\n'
            return httpx.Response(
                200,
                content=self._live_body(b"retry: 1000\n\n" + frame),
                headers={"content-type": "text/event-stream"},
            )
        if path == "/v1/usage/summary":
            self.summary_params.append(dict(request.url.params))
            if request.url.params.get("mode") == "test":  # tg_test_ traffic is counted apart
                totals = {**totals, "requests": 77}
            return httpx.Response(200, json=totals)
        if path == "/v1/usage/top":
            by = request.url.params["by"]
            if request.url.params.get("mode") == "test":  # tg_test_ traffic is counted apart
                by += ":test"
            items = [
                {
                    "value": value,
                    "requests": 7,
                    "rejected": 1,
                    "errors": 2,
                    "credits": 5,
                    "latency": latency,
                }
                for value in self.top_values.get(by, [])
            ]
            return httpx.Response(200, json={"items": items})
        if path == "/v1/usage/timeseries":
            self.usage_params.append(dict(request.url.params))
            point = {
                "time": NOW,
                "requests": 10,
                "rejected": 2,
                "errors": 3,
                "credits": 5,
                "bytes_in": 0,
                "bytes_out": 0,
                "p50_ms": 10.0,
                "p95_ms": 30.0,
                "p99_ms": None,
            }
            body = {"granularity": request.url.params["granularity"], "points": [point]}
            return httpx.Response(200, json=body)
        if path == "/v1/usage/errors":
            items = [
                {"status": 429, "rejection_reason": "rate_limited", "requests": 2},
                {"status": 502, "rejection_reason": None, "requests": 3},
            ]
            body = {
                "requests": 10,
                "by_class": {"4xx": 0, "5xx": 3},
                "rejected_by_reason": {"rate_limited": 2},
                "items": items,
            }
            return httpx.Response(200, json=body)
        if path == "/v1/usage/logs":
            self.log_params.append(dict(request.url.params))
            mode = request.url.params.get("mode")  # usage's default: both modes
            items = [
                self._logged(i) for i in self.log_items if mode in (None, i.get("mode", "live"))
            ]
            return httpx.Response(200, json={"items": items, "next_cursor": None})
        if path.startswith("/v1/usage/logs/"):
            wanted = path.rsplit("/", 1)[1]
            item = next((i for i in self.log_items if i["request_id"] == wanted), None)
            if item is None:
                return problem(404, "Not Found")
            return httpx.Response(200, json=self._logged(item))
        if path.startswith("/v1/usage/keys/"):
            quota = {"per_day": 1000, "used_today": 812, "per_month": None, "used_this_month": 9}
            return httpx.Response(200, json={"totals": totals, "quota": quota, "recent": []})
        return problem(404, "Not Found")

    async def _live_body(self, frames: bytes) -> AsyncIterator[bytes]:
        yield frames
        self.live_opened.set()
        if self.live_held is not None:
            await self.live_held.wait()

    def _logged(self, item: dict[str, Any]) -> dict[str, Any]:
        """A request of the log as usage answers it: the fake org's unless it names one."""
        return {"org_id": self.org_id, **item}

    def billing_get(self, request: httpx.Request, path: str) -> httpx.Response:
        auto = billing_auto_top_up(self, request, path)
        if auto is not None:
            return auto
        plans = _billing_plans_get(self, request, path)
        if plans is not None:
            return plans
        if path.endswith("/balance"):
            body = {
                "balance": 98765 + sum(e["amount"] for e in self.ledger),
                "status": "ok",
                "mode": "prepaid",
                "low_threshold": self.low_threshold,
            }
            return httpx.Response(200, json=body)
        if path.endswith("/transactions"):
            return httpx.Response(200, json={"items": self.ledger[::-1], "next_cursor": None})
        if path.endswith("/transactions/totals"):
            return httpx.Response(200, json=self._totals(request.url.params))
        match = re.fullmatch(r"/v1/orgs/[^/]+/statements/(\d{4}-\d{2})", path)
        if match:
            if request.url.params.get("format") == "csv":
                csv_body = f"month,opening,closing\n{match.group(1)},0,98765\n"
                return httpx.Response(200, text=csv_body, headers={"content-type": "text/csv"})
            return httpx.Response(200, json={"month": match.group(1), "closing_balance": 98765})
        return problem(404, "Not Found")

    def _totals(self, params: httpx.QueryParams) -> dict[str, Any]:
        """Billing's ledger totals by kind for `since` (at or after) and `until` (before)."""
        since, until = params.get("since"), params.get("until")
        kinds: dict[str, dict[str, Any]] = {}
        for e in self.ledger:
            if (since is None or _time(e["created_at"]) >= _time(since)) and (
                until is None or _time(e["created_at"]) < _time(until)
            ):
                total = kinds.setdefault(
                    e["kind"], {"kind": e["kind"], "entries": 0, "amount": 0, "request_count": 0}
                )
                total["entries"] += 1
                total["amount"] += e["amount"]
                total["request_count"] += e.get("request_count", 0)
        return {"kinds": sorted(kinds.values(), key=lambda k: k["kind"])}

    def billing_put(self, request: httpx.Request, path: str) -> httpx.Response:
        auto = billing_auto_top_up(self, request, path)
        if auto is not None:
            return auto
        return _billing_plans_write(self, request, path)

    def billing_patch(self, request: httpx.Request, path: str) -> httpx.Response:
        if path.startswith("/v1/plans/"):
            return _billing_plans_write(self, request, path)
        if self.role != "owner" and not self.admin:
            return problem(403, "Forbidden", "Requires the owner role.")
        body = json.loads(request.content)
        if body.get("low_threshold", 0) < 0:
            errors = [{"loc": ["body", "low_threshold"], "msg": "must be at least 0"}]
            return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
        self.low_threshold = body.get("low_threshold", self.low_threshold)
        body = {"mode": "prepaid", "low_threshold": self.low_threshold, "reserve": 0}
        return httpx.Response(200, json=body)

    def billing_post(self, request: httpx.Request, path: str) -> httpx.Response:
        """Top-ups and adjustments: platform admins, once per Idempotency-Key."""
        auto = billing_auto_top_up(self, request, path)
        if auto is not None:
            return auto
        if "plan" in path or "checkout" in path:
            return _billing_plans_write(self, request, path)
        if not self.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        key = request.headers.get("idempotency-key")
        if not key:
            return problem(400, "Bad Request", "This operation requires an Idempotency-Key.")
        if key in self.idempotency:
            return httpx.Response(201, json=self.idempotency[key])
        body = json.loads(request.content)
        if body["amount"] == 0:
            errors = [{"loc": ["body", "amount"], "msg": "must not be 0"}]
            return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
        entry = {
            "id": str(uuid.uuid4()),
            "kind": body.get("kind", "top_up"),
            "amount": body["amount"],
            "balance_after": 98765 + sum(e["amount"] for e in self.ledger) + body["amount"],
            "reason": body["reason"],
            "request_count": 0,
            "created_at": NOW,
        }
        self.ledger.append(entry)
        self.idempotency[key] = entry
        return httpx.Response(201, json=entry)


@asynccontextmanager
async def console(fake: FakeBackends, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The console app in process, its backends faked; a client with a CSRF cookie."""
    settings = Settings(
        **overrides,
        accounts_url="http://accounts.test",
        usage_url="http://usage.test",
        billing_url="http://billing.test",
        notifier_url="http://notifier.test",
        gateway_url="https://gateway.example.com",
        portal_public=fake.portal_public,
    )
    app: FastAPI = create_app(settings, transport=httpx.MockTransport(fake.handle))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console.test"
        ) as client,
    ):
        await client.get("/signin")  # the CSRF cookie
        yield client


def csrf(client: httpx.AsyncClient) -> str:
    return str(client.cookies.get("tg_csrf"))


async def sign_in(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(
        "/signin",
        data={"email": "dev@example.com", "password": PASSWORD, "csrf_token": csrf(client)},
    )


def endpoint_body(endpoint_id: str, org_id: str, url: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": endpoint_id,
        "org_id": org_id,
        "url": url,
        "description": "",
        "event_types": [],
        "enabled": True,
        "disabled_reason": None,
        "failing_since": None,
        "previous_secret_expires_at": None,
        "created_at": NOW,
        "updated_at": NOW,
        **changes,
    }


def _notifier_get(fake: FakeBackends, request: httpx.Request, path: str) -> httpx.Response:
    customer = notifier_customer(fake, request, path)
    if customer is not None:
        return customer
    sms = _notifier_sms(fake, request, path)
    if sms is not None:
        return sms
    if path == "/v1/admin/emails":
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        state = request.url.params.get("state")
        emails = [m for m in fake.emails if state is None or m["state"] == state]
        return httpx.Response(200, json={"items": emails, "next_cursor": None})
    if path == "/v1/webhooks/event-types":
        types = [
            {
                "type": "credits.low",
                "description": "Balance at or below the threshold.",
                "descriptions": {
                    "en": "Balance at or below the threshold.",
                    "zh-Hans": "余额降至或低于阈值。",
                },
                "example": {},
            },
            {
                "type": "credits.topped_up",
                "description": "Credits added; `amount` says how many <b>.",
                "example": {},
            },
        ]
        return httpx.Response(200, json={"items": types, "next_cursor": None})
    if path == f"/v1/orgs/{fake.org_id}/webhooks/endpoints":
        return httpx.Response(
            200, json={"items": list(fake.endpoints.values()), "next_cursor": None}
        )
    match = re.fullmatch(rf"/v1/orgs/{fake.org_id}/webhooks/endpoints/([^/]+)(/deliveries)?", path)
    if match and match.group(1) in fake.endpoints:
        if match.group(2):
            return httpx.Response(200, json={"items": fake.deliveries, "next_cursor": None})
        return httpx.Response(200, json=fake.endpoints[match.group(1)])
    return problem(404, "Not Found", "No such webhook endpoint.")


def _notifier_write(fake: FakeBackends, request: httpx.Request, path: str) -> httpx.Response:
    customer = notifier_customer(fake, request, path)
    if customer is not None:
        return customer
    sms = _notifier_sms(fake, request, path)
    if sms is not None:
        return sms
    retry = re.fullmatch(r"/v1/admin/emails/([^/]+)/retry", path)
    if retry:
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        fake.email_retries.append(retry.group(1))
        return httpx.Response(202, json={})
    if fake.role == "viewer":
        return problem(403, "Forbidden", "Requires the developer role or higher.")
    prefix = f"/v1/orgs/{fake.org_id}/webhooks"
    if path == f"{prefix}/endpoints" and request.method == "POST":
        body = json.loads(request.content)
        if not body["url"].startswith(("http://", "https://")):
            errors = [{"loc": ["body", "url"], "msg": "must be an http(s) URL"}]
            return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
        endpoint_id = str(uuid.uuid4())
        fake.endpoints[endpoint_id] = endpoint_body(
            endpoint_id,
            fake.org_id,
            body["url"],
            event_types=body["event_types"],
            description=body["description"],
        )
        return httpx.Response(201, json={**fake.endpoints[endpoint_id], "secret": "whsec_FIRST"})
    match = re.fullmatch(rf"{prefix}/endpoints/([^/]+)(?:/(rotate-secret|test))?", path)
    if match:
        endpoint = fake.endpoints[match.group(1)]
        if match.group(2) == "rotate-secret":
            body = {"secret": "whsec_ROTATED", "previous_secret_expires_at": NOW}
            return httpx.Response(200, json=body)
        if match.group(2) == "test":
            fake.deliveries.insert(0, delivery_body(len(fake.deliveries) + 1, "pending"))
            return httpx.Response(202, json={"delivery_id": 1, "message_id": "msg_1"})
        endpoint.update(json.loads(request.content))
        return httpx.Response(200, json=endpoint)
    match = re.fullmatch(rf"{prefix}/deliveries/(\d+)/retry", path)
    if match:
        fake.retried.append(int(match.group(1)))
        return httpx.Response(202, json={})
    return problem(404, "Not Found")


def delivery_body(delivery_id: int, state: str) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "message_id": f"msg_{delivery_id}",
        "endpoint_id": str(uuid.uuid4()),
        "event_type": "ping",
        "state": state,
        "attempts": 1,
        "next_attempt_at": None,
        "last_status": 500 if state == "failed" else None,
        "last_error": "<script>alert(1)</script>" if state == "failed" else None,
        "created_at": NOW,
        "finished_at": None,
    }


FakeBackends.notifier_get = _notifier_get  # type: ignore[attr-defined]
FakeBackends.notifier_post = _notifier_write  # type: ignore[attr-defined]
FakeBackends.notifier_patch = _notifier_write  # type: ignore[attr-defined]
FakeBackends.notifier_put = _notifier_write  # type: ignore[attr-defined]
FakeBackends.notifier_delete = _notifier_write  # type: ignore[attr-defined]


def api_body(api_id: str, slug: str, name: str, **changes: Any) -> dict[str, Any]:
    """An API as accounts lists it to a member."""
    return {
        "id": api_id,
        "slug": slug,
        "name": name,
        "api_version": "v1",
        "upstream_url": "http://upstream.internal:9000",
        "status": "active",
        "deprecated_at": None,
        "sunset_at": None,
        "timeout_ms": 30000,
        "price": 2,
        "charge_failed_calls": False,
        "limits": {},
        "has_upstream_credentials": True,
        "upstream_header_names": [],
        "has_openapi_document": False,
        "routes": [],
        "version": 1,
        "created_at": NOW,
        "updated_at": NOW,
        **changes,
    }


def catalog_body(api_id: str, slug: str, name: str, **changes: Any) -> dict[str, Any]:
    """An API as accounts' public catalog shows it."""
    return {
        "id": api_id,
        "slug": slug,
        "name": name,
        "description": "",
        "api_version": "v1",
        "status": "active",
        "sunset_at": None,
        "price": 2,
        "price_low": 2,
        "price_high": 2,
        "limits": {},
        "tags": [],
        **changes,
    }


def route_body(method: str, path: str, price: int | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "method": method,
        "path_template": path,
        "price": price,
        "limits": {},
        "required_scopes": [],
        "operation_id": None,
    }


def user_body(email: str, *, active: bool = True, admin: bool = False) -> dict[str, Any]:
    """A user as accounts lists it to platform admins."""
    return {
        "id": str(uuid.uuid4()),
        "email": email,
        "name": email.split("@")[0],
        "locale": "en",
        "is_admin": admin,
        "is_active": active,
        "totp_enabled": False,
        "created_at": NOW,
    }


def email_body(to: str, state: str, error: str | None = None) -> dict[str, Any]:
    """A mail of notifier's queue as admins list it."""
    return {
        "id": str(uuid.uuid4()),
        "kind": "password_reset",
        "locale": "en",
        "to": to,
        "org_id": None,
        "state": state,
        "attempts": 3 if state == "failed" else 1,
        "last_error": error,
        "provider_id": None,
        "created_at": NOW,
        "finished_at": NOW,
    }


def log_body(
    key_id: str | None, path: str = "/hello", status: int = 200, mode: str = "live"
) -> dict[str, Any]:
    """A request of usage's log (`mode` test: a tg_test_ key's, answered by the mock)."""
    return {
        "request_id": str(uuid.uuid4()),
        "time": NOW,
        "key_id": key_id,
        "api_id": None,
        "method": "GET",
        "path": path,
        "status": status,
        "outcome": "completed",
        "rejection_reason": None,
        "latency_ms": 12,
        "upstream_latency_ms": 10,
        "request_bytes": 0,
        "response_bytes": 10,
        "client_ip": "127.0.0.1",
        "cost": 1,
        "mode": mode,
        "served_by": "mock" if mode == "test" else "upstream",
        "contract_drift": None,
    }


def plan_body(
    name: str, price: int = 0, included: int | None = 1000, **changes: Any
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "monthly_price": price,
        "currency": "usd",
        "included_requests": included,
        "past_quota": "reject_402",
        "overage_price": 0,
        "rate_limits": {},
        "trial_days": 0,
        "free": price == 0,
        "archived": False,
        "created_at": NOW,
        **changes,
    }


def _org_plan(fake: FakeBackends) -> dict[str, Any]:
    return {
        "org_id": fake.org_id,
        "plan": fake.plans[str(fake.org_plan_id)],
        "status": fake.plan_status,
        "period_start": "2026-11-01T00:00:00Z",
        "period_end": "2026-12-01T00:00:00Z",
        "trial_ends_at": None,
        "next_plan": fake.plans[fake.next_plan_id] if fake.next_plan_id else None,
        "version": 1,
    }


def _billing_plans_get(
    fake: FakeBackends, request: httpx.Request, path: str
) -> httpx.Response | None:
    if path == "/v1/plans":
        archived = request.url.params.get("archived") == "true"
        if archived and not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        items = [p for p in fake.plans.values() if archived or not p["archived"]]
        return httpx.Response(200, json={"items": items, "next_cursor": None})
    if path == f"/v1/orgs/{fake.org_id}/plan":
        if fake.org_plan_id is None:
            return problem(404, "Not Found", "This org has no plan.", slug="no-plan")
        return httpx.Response(200, json=_org_plan(fake))
    if path == "/v1/credit-packs":
        pack = {"id": "small", "credits": 10000, "price": 1000, "currency": "usd"}
        return httpx.Response(200, json={"provider": fake.provider, "packs": [pack]})
    if path == f"/v1/orgs/{fake.org_id}/purchases":
        return httpx.Response(200, json={"items": fake.purchases, "next_cursor": "p2"})
    if "/plan" in path or "/purchases" in path:
        return problem(404, "Not Found")
    return None


def _billing_plans_write(fake: FakeBackends, request: httpx.Request, path: str) -> httpx.Response:
    body = json.loads(request.content or b"{}")
    if path == "/v1/plans":
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        plan = plan_body(body["name"], body["monthly_price"], body["included_requests"])
        fake.plans[plan["id"]] = plan
        return httpx.Response(201, json=plan)
    archive = re.fullmatch(r"/v1/plans/([^/]+)", path)
    if archive:
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        fake.plans[archive.group(1)]["archived"] = body["archived"]
        return httpx.Response(200, json=fake.plans[archive.group(1)])
    if path == f"/v1/orgs/{fake.org_id}/plan":
        if fake.role != "owner" and not fake.admin:
            return problem(403, "Forbidden", "Requires the owner role.")
        plan = fake.plans.get(body["plan_id"])
        if plan is None:
            return problem(404, "Not Found", "No such plan.")
        if not plan["free"] and not fake.admin:
            return problem(
                403, "Forbidden", "This plan requires payment.", slug="plan-requires-payment"
            )
        current = fake.plans.get(str(fake.org_plan_id))
        if current and plan["monthly_price"] < current["monthly_price"]:
            fake.next_plan_id = plan["id"]
        else:
            fake.org_plan_id = plan["id"]
        return httpx.Response(200, json=_org_plan(fake))
    if path.startswith(f"/v1/orgs/{fake.org_id}/") and path.endswith(
        ("checkout-sessions", "subscription-checkout")
    ):
        if fake.role != "owner":
            return problem(403, "Forbidden", "Requires the owner role.")
        if fake.provider != "stripe":
            return problem(
                409, "Conflict", "Card payments are not configured.", slug="payments-not-configured"
            )
        fake.checkouts.append(body.get("pack_id") or body.get("plan_id"))
        url = "https://checkout.stripe.test/c/pay/cs_test_1"
        return httpx.Response(201, json={"purchase_id": str(uuid.uuid4()), "checkout_url": url})
    return problem(404, "Not Found")


def sms_body(to: str, text: str, status: str = "delivered") -> dict[str, Any]:
    """An outbound SMS as notifier's org log returns it (without its timeline)."""
    return {
        "id": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "key_id": None,
        "to": to,
        "from": "+15005550006",
        "text": text,
        "encoding": "gsm7",
        "segments": 1,
        "price_per_segment": 7,
        "price": 7,
        "refunded": status == "failed",
        "client_reference": None,
        "status": status,
        "provider_message_id": "SM1",
        "error_code": None,
        "error_message": None,
        "queued_at": NOW,
        "sent_at": NOW,
        "delivered_at": NOW if status == "delivered" else None,
        "failed_at": None,
        "timeline": None,
    }


def _notifier_sms(fake: FakeBackends, request: httpx.Request, path: str) -> httpx.Response | None:
    if path == "/v1/admin/sms/prices":
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        if request.method == "PUT":
            body = json.loads(request.content)
            if body["price_per_segment"] > 10**12:
                errors = [{"loc": ["body", "price_per_segment"], "msg": "at most 10**12"}]
                return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
            fake.sms_prices[body["prefix"]] = body["price_per_segment"]
        elif request.method == "DELETE":
            fake.sms_prices.pop(request.url.params["prefix"], None)
            return httpx.Response(204)
        rows = [
            {"prefix": k, "price_per_segment": v, "updated_at": NOW}
            for k, v in sorted(fake.sms_prices.items())
        ]
        return httpx.Response(200, json=rows)
    if path == "/v1/admin/sms/sent":
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        params = dict(request.url.params)
        fake.admin_sms_params.append(params)
        items = [
            m
            for m in fake.sms.values()
            if params.get("status") in (None, m["status"])
            and params.get("org_id") in (None, m["org_id"])
        ]
        return httpx.Response(200, json={"items": items, "next_cursor": None})
    if path == f"/v1/orgs/{fake.org_id}/sms/sent":
        fake.sms_params.append(dict(request.url.params))
        status = request.url.params.get("status")
        items = [m for m in fake.sms.values() if status is None or m["status"] == status]
        return httpx.Response(200, json={"items": items, "next_cursor": None})
    one = re.fullmatch(r"/v1/orgs/([^/]+)/sms/sent/([^/]+)", path)
    if one:
        message = fake.sms.get(one.group(2))
        if one.group(1) != fake.org_id or message is None:
            return problem(404, "Not Found", "No such message.")
        timeline = [
            {"status": "queued", "error_code": None, "at": "2026-11-29T09:59:58Z"},
            {"status": "sent", "error_code": None, "at": "2026-11-29T09:59:59Z"},
            {"status": message["status"], "error_code": None, "at": NOW},
        ]
        return httpx.Response(200, json={**message, "timeline": timeline})
    return None


# --- customer pages: notification contacts, auto top-up, inbound SMS and its routing ---

AUTO_TOP_UP: dict[str, Any] = {
    "enabled": False,
    "threshold": 1000,
    "target": 5000,
    "monthly_cap": 5000,
    "currency": "usd",
    "credits_per_unit": 10,
    "payment_method_saved": False,
    "spent_this_month": 1250,
    "last_charge": None,
}


def billing_auto_top_up(
    fake: FakeBackends, request: httpx.Request, path: str
) -> httpx.Response | None:
    """Billing's auto top-up routes: members read, owners write (as billing authorises)."""
    base = f"/v1/orgs/{fake.org_id}/auto-top-up"
    if not path.endswith(("/auto-top-up", "/auto-top-up/setup-session")):
        return None
    if not path.startswith(base):
        return problem(404, "Not Found", "Not a member of this organisation.")
    if request.method == "GET":
        return httpx.Response(200, json=fake.auto_top_up)
    if fake.role != "owner":
        return problem(403, "Forbidden", "Requires the owner role.")
    if path.endswith("/setup-session"):
        if fake.provider != "stripe":
            return problem(
                409, "Conflict", "Card payments are not configured.", slug="payments-not-configured"
            )
        return httpx.Response(201, json={"checkout_url": "https://checkout.stripe.test/setup"})
    body = json.loads(request.content)
    if body["enabled"] and not fake.auto_top_up["payment_method_saved"]:
        return problem(
            409,
            "Conflict",
            "Save a card first.",
            type="https://tollgate.dev/problems/no-payment-method",
        )
    if body["target"] <= body["threshold"]:
        return problem(
            422,
            "Unprocessable Content",
            "The target must be above the threshold.",
            type="https://tollgate.dev/problems/target-not-above-threshold",
        )
    fake.auto_top_up.update(body)
    return httpx.Response(200, json=fake.auto_top_up)


def inbound_body(from_number: str, text: str, *, read: bool = False) -> dict[str, Any]:
    """An inbound SMS as notifier's org inbox returns it."""
    return {
        "id": str(uuid.uuid4()),
        "provider": "generic",
        "provider_message_id": f"in-{uuid.uuid4().hex[:8]}",
        "from_number": from_number,
        "to_number": "+15005550006",
        "body": text,
        "org_id": None,
        "routed_by": "assigned_number",
        "rule_id": None,
        "received_at": NOW,
        "read": read,
    }


def notifier_customer(
    fake: FakeBackends, request: httpx.Request, path: str
) -> httpx.Response | None:
    """Notifier's contacts, org inbox, and admin numbers and keyword rules."""
    org = f"/v1/orgs/{fake.org_id}"
    if path.endswith("/notification-contacts"):
        if path != f"{org}/notification-contacts":
            return problem(404, "Not Found", "Not a member of this organisation.")
        if request.method == "GET":
            return httpx.Response(200, json={"items": fake.contacts, "next_cursor": None})
        if fake.role != "owner" and not fake.admin:
            return problem(403, "Forbidden", "Requires the owner role.")
        contacts = json.loads(request.content)["contacts"]
        for index, contact in enumerate(contacts):
            if contact["email"].endswith(".test"):
                errors = [{"loc": ["body", "contacts", index, "email"], "msg": "not deliverable"}]
                return problem(422, "Unprocessable Content", "Invalid body.", errors=errors)
        fake.contacts = contacts
        return httpx.Response(200, json={"items": contacts, "next_cursor": None})
    if path == f"{org}/sms/messages":
        params = request.url.params
        items = [
            m
            for m in fake.inbox
            if (params.get("unread") != "true" or not m["read"])
            and params.get("from_number") in (None, m["from_number"])
        ]
        return httpx.Response(200, json={"items": items, "next_cursor": None})
    read = re.fullmatch(r"/v1/orgs/([^/]+)/sms/messages/([^/]+)/read", path)
    if read:
        message = next((m for m in fake.inbox if m["id"] == read.group(2)), None)
        if read.group(1) != fake.org_id or message is None:
            return problem(404, "Not Found", "No such message.")
        message["read"] = json.loads(request.content)["read"]
        return httpx.Response(200, json=message)
    routing = re.fullmatch(r"/v1/orgs/([^/]+)/sms/(numbers|keyword-rules)", path)
    if routing:
        if routing.group(1) != fake.org_id and not fake.admin:
            return problem(404, "Not Found", "No such organisation.")
        rows = fake.sms_numbers if routing.group(2) == "numbers" else fake.keyword_rules
        mine = [r for r in rows if r["org_id"] == routing.group(1)]
        if routing.group(2) == "keyword-rules":
            mine.sort(key=lambda r: r["priority"])
        return _one_per_page(request, mine)
    if path.startswith(("/v1/admin/sms/numbers", "/v1/admin/sms/keyword-rules")):
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        return _admin_sms_routing(fake, request, path)
    if path.startswith("/v1/admin/sms/providers"):
        if not fake.admin:
            return problem(403, "Forbidden", "Platform admins only.")
        return _admin_sms_providers(fake, request, path)
    return None


def _admin_sms_providers(fake: FakeBackends, request: httpx.Request, path: str) -> httpx.Response:
    """Notifier's providers: the list (credentials never in it), POST, PATCH (both
    recorded), DELETE, a test send (accepted unless `to` ends in 0) and the balance."""
    if path == "/v1/admin/sms/providers" and request.method == "GET":
        return httpx.Response(200, json=fake.sms_providers)
    if path == "/v1/admin/sms/providers":
        body = json.loads(request.content)
        fake.provider_adds.append(body)
        if any(p["name"] == body["name"] for p in fake.sms_providers):
            return problem(409, "Conflict", "A provider with that name exists.")
        if body["kind"] == "twilio" and not body["config"].get("account_sid"):
            return problem(
                422, "Unprocessable Content", "A Twilio provider needs config.account_sid."
            )
        added = {
            "id": str(uuid.uuid4()),
            **{k: v for k, v in body.items() if k != "credentials"},
            "balance_low": False,
            "created_at": NOW,
            "credentials_set": True,
        }
        fake.sms_providers.append(added)
        return httpx.Response(201, json=added)
    match = re.fullmatch(r"/v1/admin/sms/providers/([^/]+)(/test-send|/balance)?", path)
    provider = next((p for p in fake.sms_providers if match and match[1] == p["id"]), None)
    if provider is None:
        return problem(404, "Not Found", "No such provider.")
    if request.method == "DELETE":
        fake.sms_providers.remove(provider)
        return httpx.Response(204)
    if path.endswith("/balance"):
        balance = fake.provider_balances.get(provider["id"])
        if balance is None:
            return problem(503, "Service Unavailable", "The provider answered 500.")
        return httpx.Response(200, json={"provider_id": provider["id"], **balance})
    body = json.loads(request.content)
    if path.endswith("/test-send"):
        fake.provider_tests.append(body)
        if not body["to"].endswith("0"):
            answer = {"accepted": True, "provider_message_id": "SM-test-1"}
            return httpx.Response(200, json={**answer, "error_code": None, "error_message": None})
        refused = {"error_code": "21211", "error_message": "<b>invalid 'To'</b>"}
        return httpx.Response(200, json={"accepted": False, "provider_message_id": None, **refused})
    fake.provider_patches.append(body)
    if body.get("name") == "taken":
        return problem(409, "Conflict", "A provider with that name exists.")
    if body.get("config", {}).get("account_sid") == "":
        return problem(422, "Unprocessable Content", "A Twilio provider needs config.account_sid.")
    provider.update({k: v for k, v in body.items() if k != "credentials"})
    return httpx.Response(200, json=provider)


def _one_per_page(request: httpx.Request, items: list[dict[str, Any]]) -> httpx.Response:
    """A page of one item, so that the console must follow `next_cursor`."""
    start = int(request.url.params.get("cursor", "0"))
    more = str(start + 1) if start + 1 < len(items) else None
    return httpx.Response(200, json={"items": items[start : start + 1], "next_cursor": more})


def _admin_sms_routing(fake: FakeBackends, request: httpx.Request, path: str) -> httpx.Response:
    if path == "/v1/admin/sms/numbers":
        if request.method == "PUT":
            body = json.loads(request.content)
            fake.sms_numbers = [n for n in fake.sms_numbers if n["number"] != body["number"]]
            fake.sms_numbers.append({**body, "created_at": NOW})
        return _one_per_page(request, fake.sms_numbers)
    if path.startswith("/v1/admin/sms/numbers/"):
        number = path.rsplit("/", 1)[1]
        fake.sms_numbers = [n for n in fake.sms_numbers if n["number"] != number]
        return httpx.Response(204)
    if path == "/v1/admin/sms/keyword-rules":
        if request.method == "POST":
            body = json.loads(request.content)
            if body["kind"] == "regex" and "(?=" in body["pattern"]:
                return problem(
                    422,
                    "Unprocessable Content",
                    "Invalid regex: lookaround. Patterns run on RE2.",
                    type="https://tollgate.dev/problems/invalid-pattern",
                )
            rule = {"id": str(uuid.uuid4()), **body, "created_at": NOW}
            fake.keyword_rules.append(rule)
            return httpx.Response(201, json=rule)
        return _one_per_page(request, fake.keyword_rules)
    rule_id = path.rsplit("/", 1)[1]
    if request.method == "PATCH":
        rule = next((r for r in fake.keyword_rules if r["id"] == rule_id), None)
        if rule is None:
            return problem(404, "Not Found", "No such keyword rule.")
        body = json.loads(request.content)
        if body.get("kind") == "regex" and "(?=" in body.get("pattern", ""):
            return problem(422, "Unprocessable Content", "Invalid regex: lookaround.")
        rule.update(body)
        return httpx.Response(200, json=rule)
    fake.keyword_rules = [r for r in fake.keyword_rules if r["id"] != rule_id]
    return httpx.Response(204)
