"""Request events: one per request, produced in batches off the request path."""
