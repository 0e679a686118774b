"""Retention: finished deliveries, sent/failed emails and routed SMS deleted after a while."""
