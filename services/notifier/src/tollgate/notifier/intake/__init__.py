"""Intake: domain events from Kafka into the notifier, exactly once."""
