"""`Idempotency-Key` for admin writes: the first response is remembered and replayed."""
