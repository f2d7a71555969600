"""A Dagster asset-based ETL platform: CSV files in, a jobs ledger, a warehouse out."""
