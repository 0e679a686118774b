"""Key quotas: per-key daily/monthly usage and the threshold alerts it triggers."""
