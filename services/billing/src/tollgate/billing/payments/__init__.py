"""Payments: credit packs bought through a payment provider, their receipts, and the
provider's webhooks."""
