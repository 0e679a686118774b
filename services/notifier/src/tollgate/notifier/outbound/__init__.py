"""Outbound SMS: customers send through the gateway, pay per segment, get delivery
reports; providers sit behind one interface."""
