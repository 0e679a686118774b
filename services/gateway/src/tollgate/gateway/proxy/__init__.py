"""The request path: admission decisions and forwarding to the upstream."""
