"""Downstream tables built from what jobs loaded, refreshed after loads."""
