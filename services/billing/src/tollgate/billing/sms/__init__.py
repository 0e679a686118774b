"""SMS charges: the notifier's priced outbound SMS debited once, refunded once."""
