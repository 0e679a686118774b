"""The platform's API registry: upstreams, routes, prices, limits, sealed credentials."""
