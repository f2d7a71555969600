"""The work of each asset, as plain functions the assets call (and tests call directly)."""
