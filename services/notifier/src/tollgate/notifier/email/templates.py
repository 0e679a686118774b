"""Email templates (HTML + text) in English and Chinese, picked by locale.

Pure rendering, no I/O. Every value is HTML-escaped in the HTML part. Links carry
single-use tokens: the rendered mail is never stored or logged, only sent.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RenderedEmail:
    """A ready-to-send mail body."""

    subject: str
    html: str
    text: str


KINDS = (
    "password_reset",
    "email_verification",
    "org_invitation",
    "credits_low",
    "credits_exhausted",
    "plan_payment_failed",
    "plan_suspended",
    "auto_top_up_failed",
    "usage_threshold",
    "api_deprecated",
    "route_deprecated",
    "webhook_endpoint_disabled",
)

# kind -> language -> (subject, paragraphs, optional button label). `{name}` fields
# come from the context; `link` is rendered as a button/line when present.
_TEXTS: dict[str, dict[str, tuple[str, tuple[str, ...], str | None]]] = {
    "password_reset": {
        "en": (
            "Reset your Tollgate password",
            (
                "Someone asked to reset the password of your Tollgate account.",
                "The link works once and expires at {expires_at}. If it was not you, "
                "ignore this email; your password stays as it is.",
            ),
            "Choose a new password",
        ),
        "zh": (
            "重置您的 Tollgate 密码",
            (
                "有人请求重置您的 Tollgate 账户密码。",
                "该链接仅可使用一次,将于 {expires_at} 失效。如果这不是您本人的操作,请忽略此邮件,"
                "您的密码不会改变。",
            ),
            "设置新密码",
        ),
    },
    "email_verification": {
        "en": (
            "Confirm your email address for Tollgate",
            (
                "Confirm that this address belongs to your new Tollgate account.",
                "The link works once and expires at {expires_at}. Until the address is "
                "confirmed you cannot create live API keys or invite people. If you did not "
                "sign up, ignore this email.",
            ),
            "Confirm my email address",
        ),
        "zh": (
            "确认您在 Tollgate 的邮箱地址",
            (
                "请确认此邮箱地址属于您新注册的 Tollgate 账户。",
                "该链接仅可使用一次,将于 {expires_at} 失效。确认之前,您无法创建正式(live)API 密钥,"
                "也无法邀请他人。如果您没有注册,请忽略此邮件。",
            ),
            "确认我的邮箱地址",
        ),
    },
    "org_invitation": {
        "en": (
            "You are invited to join {org_name} on Tollgate",
            (
                "You have been invited to join {org_name} as {role}.",
                "The invitation expires at {expires_at}.",
            ),
            "Accept the invitation",
        ),
        "zh": (
            "邀请您加入 Tollgate 上的 {org_name}",
            ("您已被邀请以 {role} 身份加入 {org_name}。", "邀请将于 {expires_at} 失效。"),
            "接受邀请",
        ),
    },
    "credits_low": {
        "en": (
            "Your Tollgate credits are running low",
            (
                "Your organisation's balance is {balance} credits, at or below your "
                "threshold of {threshold}.",
                "Top up soon so that your API keys keep working.",
            ),
            None,
        ),
        "zh": (
            "您的 Tollgate 额度即将用完",
            (
                "您组织的余额为 {balance} 额度,已达到或低于阈值 {threshold}。",
                "请尽快充值,以免 API 密钥停止工作。",
            ),
            None,
        ),
    },
    "credits_exhausted": {
        "en": (
            "Your Tollgate credits are exhausted",
            (
                "Your organisation's balance is {balance} credits.",
                "Prepaid organisations' requests are rejected with 402 until credits are added.",
            ),
            None,
        ),
        "zh": (
            "您的 Tollgate 额度已用完",
            ("您组织的余额为 {balance} 额度。", "预付费组织的请求将被拒绝(402),直至充值。"),
            None,
        ),
    },
    "plan_payment_failed": {
        "en": (
            "Payment for your Tollgate plan {plan_name} failed",
            (
                "We could not collect the payment of invoice {invoice_id} for your "
                "organisation's plan {plan_name}.",
                "Your API keys keep working until {grace_until}. If the invoice is still unpaid "
                "then, the plan is suspended and every request is rejected with 402. Update your "
                "payment method to keep your service running.",
            ),
            None,
        ),
        "zh": (
            "您的 Tollgate 套餐 {plan_name} 付款失败",
            (
                "您组织的套餐 {plan_name} 的账单 {invoice_id} 扣款失败。",
                "您的 API 密钥在 {grace_until} 之前仍可正常使用。届时若账单仍未支付,套餐将被暂停,"
                "所有请求都将被拒绝(402)。请更新付款方式,以免服务中断。",
            ),
            None,
        ),
    },
    "plan_suspended": {
        "en": (
            "Your Tollgate plan {plan_name} is suspended",
            (
                "Your organisation's plan {plan_name} was suspended: {reason}.",
                "Every request is rejected with 402 until the plan is paid. Your API keys work "
                "again as soon as the payment goes through.",
            ),
            None,
        ),
        "zh": (
            "您的 Tollgate 套餐 {plan_name} 已被暂停",
            (
                "您组织的套餐 {plan_name} 已被暂停:{reason}。",
                "在套餐付清之前,所有请求都将被拒绝(402)。付款成功后,您的 API 密钥将立即恢复可用。",
            ),
            None,
        ),
    },
    "auto_top_up_failed": {
        "en": (
            "Your Tollgate auto top-up failed",
            (
                "An automatic top-up of your organisation's credits was not charged: "
                "{reason}. No credits were added; the balance is {balance} credits.",
                "Prepaid organisations' requests are rejected with 402 once the credits run "
                "out. Check the card saved for auto top-up and its monthly cap, or buy credits "
                "in the console.",
            ),
            None,
        ),
        "zh": (
            "您的 Tollgate 自动充值失败",
            (
                "您组织的一次自动充值未能扣款:{reason}。未添加任何额度,当前余额为 {balance} 额度。",
                "额度用完后,预付费组织的请求将被拒绝(402)。请检查为自动充值保存的银行卡及其每月上限,"
                "或在控制台中购买额度。",
            ),
            None,
        ),
    },
    "usage_threshold": {
        "en": (
            "API key usage reached {threshold_percent} % of its {period} limit",
            (
                "Key {key_id} has used {used} of {limit} requests this {period} "
                "({threshold_percent} %).",
                "Requests beyond the limit are rejected with 429.",
            ),
            None,
        ),
        "zh": (
            "API 密钥用量已达到{period}限额的 {threshold_percent}%",
            (
                "密钥 {key_id} 本{period}已使用 {used} / {limit} 次请求({threshold_percent}%)。",
                "超出限额的请求将被拒绝(429)。",
            ),
            None,
        ),
    },
    "api_deprecated": {
        "en": (
            "The API {api_name} {api_version} is deprecated",
            (
                "Your organisation's live keys called the API {api_name} {api_version} "
                "(/{api_slug}/) {requests} times in the last 30 days. It is deprecated: "
                "it keeps working until it is retired, and its answers carry the "
                "Deprecation and Sunset headers.",
                "Retirement date: {sunset}. After it, calls are rejected; move your clients "
                "to its successor before then. The developer portal shows the API's docs and "
                "changelog.",
            ),
            None,
        ),
        "zh": (
            "API {api_name} {api_version} 已弃用",
            (
                "过去 30 天内,您组织的正式(live)密钥调用了 API {api_name} {api_version}"
                "(/{api_slug}/)共 {requests} 次。该 API 已弃用:在停用之前仍可正常使用,"
                "其响应会带有 Deprecation 和 Sunset 头。",
                "停用日期:{sunset}。停用之后,调用将被拒绝;请在此之前将客户端迁移到其替代版本。"
                "开发者门户中提供该 API 的文档和变更记录。",
            ),
            None,
        ),
    },
    "route_deprecated": {
        "en": (
            "{route} of the API {api_name} {api_version} is deprecated",
            (
                "Your organisation's live keys called {route} of the API {api_name} "
                "{api_version} (/{api_slug}{path_template}) {requests} times in the last 30 "
                "days. This route is deprecated: it keeps working until it is retired, and "
                "its answers carry the Deprecation and Sunset headers.",
                "Retirement date: {sunset}. After it, calls to this route are answered "
                "410 Gone; move your clients off it before then. The developer portal shows "
                "the API's docs and changelog.",
            ),
            None,
        ),
        "zh": (
            "API {api_name} {api_version} 的 {route} 已弃用",
            (
                "过去 30 天内,您组织的正式(live)密钥调用了 API {api_name} {api_version} 的 "
                "{route}(/{api_slug}{path_template})共 {requests} 次。该路由已弃用:在停用"
                "之前仍可正常使用,其响应会带有 Deprecation 和 Sunset 头。",
                "停用日期:{sunset}。停用之后,对该路由的调用将返回 410 Gone;请在此之前让客户端"
                "停止使用它。开发者门户中提供该 API 的文档和变更记录。",
            ),
            None,
        ),
    },
    "webhook_endpoint_disabled": {
        "en": (
            "A Tollgate webhook endpoint was disabled",
            (
                "A webhook endpoint at {host} (id {endpoint_id}) was disabled: {reason}.",
                "Fix the receiver, enable the endpoint again and recover the failed messages "
                "from the console.",
            ),
            None,
        ),
        "zh": (
            "一个 Tollgate Webhook 端点已被停用",
            (
                "位于 {host} 的一个 Webhook 端点(ID {endpoint_id})已被停用:{reason}。",
                "请修复接收端,重新启用该端点,并在控制台中恢复失败的消息。",
            ),
            None,
        ),
    },
}

_REASONS = {
    "gone": {"en": "it answered 410 Gone", "zh": "它返回了 410 Gone"},
    "failing": {
        "en": "every delivery has failed for 5 days",
        "zh": "连续 5 天投递全部失败",
    },
    # Billing's PlanSuspended reasons are plain English (free text in the contract);
    # the ones it sends today are translated here, anything else is shown as sent.
    "invoice unpaid after the grace period": {
        "en": "invoice unpaid after the grace period",
        "zh": "宽限期结束时账单仍未支付",
    },
    "the subscription ended": {"en": "the subscription ended", "zh": "订阅已结束"},
    # AutoTopUpFailed reasons (codes).
    "card_declined": {"en": "the card was declined", "zh": "银行卡被拒付"},
    "authentication_required": {
        "en": "the bank asks you to confirm the payment, which an automatic charge cannot do",
        "zh": "发卡行要求您亲自确认这笔付款,自动扣款无法完成",
    },
    "monthly_cap_reached": {
        "en": "this month's spending cap for auto top-up is reached",
        "zh": "本月自动充值的支出上限已用完",
    },
    "provider_unavailable": {
        "en": "the payment provider could not be reached, even after several tries",
        "zh": "多次尝试后仍无法连接支付服务商",
    },
    "payment_method_missing": {
        "en": "no card is saved for auto top-up",
        "zh": "没有为自动充值保存银行卡",
    },
}
_SUNSETS = {"none": {"en": "not set yet", "zh": "尚未确定"}}
_PERIODS = {"day": {"en": "day", "zh": "日"}, "month": {"en": "month", "zh": "月"}}


def language(locale: str) -> str:
    """`zh` for Chinese locales (zh, zh-CN, zh-Hant-TW...), else `en`."""
    return "zh" if locale.lower().replace("_", "-").split("-")[0] == "zh" else "en"


def render(
    kind: str, locale: str, context: dict[str, Any], link: str | None = None
) -> RenderedEmail:
    """The mail of `kind` in the locale's language; `link` is the call to action."""
    lang = language(locale)
    subject_t, paragraphs_t, button = _TEXTS[kind][lang]
    values = dict(context)
    if "reason" in values:
        values["reason"] = _REASONS.get(str(values["reason"]), {}).get(lang, values["reason"])
    if "sunset" in values:
        values["sunset"] = _SUNSETS.get(str(values["sunset"]), {}).get(lang, values["sunset"])
    if "period" in values:
        values["period"] = _PERIODS.get(str(values["period"]), {}).get(lang, values["period"])
    subject = subject_t.format(**values)
    paragraphs = [p.format(**values) for p in paragraphs_t]
    escaped = {k: html.escape(str(v)) for k, v in values.items()}
    html_paragraphs = [f"<p>{p.format(**escaped)}</p>" for p in paragraphs_t]
    text_lines = [*paragraphs]
    if link is not None and button is not None:
        html_paragraphs.insert(
            1, f'<p><a href="{html.escape(link, quote=True)}">{html.escape(button)}</a></p>'
        )
        text_lines.insert(1, f"{button}: {link}")
    body_html = (
        f'<!doctype html><html lang="{lang}"><body style="font-family:sans-serif">'
        f"<h1>{html.escape(subject)}</h1>{''.join(html_paragraphs)}"
        '<p style="color:#777">Tollgate</p></body></html>'
    )
    return RenderedEmail(
        subject=subject, html=body_html, text="\n\n".join([*text_lines, "-- Tollgate"]) + "\n"
    )
