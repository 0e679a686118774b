"""The raw request log: filtered, paginated listing and lookup by request id."""
