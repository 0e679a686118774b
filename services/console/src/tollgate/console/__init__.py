"""Tollgate console: the web UI over the other services' REST APIs."""
