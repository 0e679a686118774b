"""Retention: day partitions created ahead, old partitions and rows dropped."""
