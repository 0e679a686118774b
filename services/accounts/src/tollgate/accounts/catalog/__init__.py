"""The public API catalog: what a customer may read about the registry before signing in."""
