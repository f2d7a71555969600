"""A Dagster asset-based ETL platform: CSV files in, a jobs ledger, a warehouse out."""

from etl_assets.runtime.memory import return_freed_memory

# Every process of the platform (run workers above all) streams data in chunks: let its
# memory go back down after each (see etl_assets/runtime/memory.py for the figures).
return_freed_memory()
