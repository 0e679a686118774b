"""Auto top-up: per-org settings, the crossing that queues a charge, and the worker."""
