"""Tollgate gateway: the data plane. Authenticates API keys, enforces limits and credits
locally from replayed topics, proxies to the upstream and publishes one event per
request. Never touches a database or another service on the request path."""
