"""The per-job partitions: one dynamic partition per job id."""

import dagster as dg

job_partitions = dg.DynamicPartitionsDefinition(name="jobs")
