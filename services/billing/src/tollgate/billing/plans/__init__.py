"""Plans (rate cards) and each org's plan, published to the gateway."""
