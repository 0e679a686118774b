"""Rate limits: sliding-window counters evaluated locally or atomically in Redis."""
