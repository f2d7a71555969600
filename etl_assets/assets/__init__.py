"""Dagster objects built from the dataset declarations: per-dataset assets, jobs and checks
(factory.py), the batch job for small jobs, partitions and the warehouse IO manager."""
