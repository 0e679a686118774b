"""Ingestion: the gateway request stream into the log and the aggregates, exactly once."""
