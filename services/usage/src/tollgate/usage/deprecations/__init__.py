"""API deprecations: tell the orgs that called an API lately that it is deprecated."""
