"""Webhooks: org endpoints, Standard Webhooks signing, a durable delivery queue."""
