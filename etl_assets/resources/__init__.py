"""Dagster resources: the ledger database, the staging folder and the enrichment APIs."""
