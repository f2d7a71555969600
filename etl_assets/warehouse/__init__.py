"""The warehouse: bulk upserts, the per-job load, and the IO manager that runs it."""
