"""Inbound SMS: provider webhooks, verified and deduplicated, routed to an org."""
