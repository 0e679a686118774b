"""Tollgate notifier service: signed webhooks, email via Resend, inbound SMS routing."""
