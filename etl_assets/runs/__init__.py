"""Keeping the ledger true while Dagster runs a job: steps, heartbeats, retries, the reaper."""
