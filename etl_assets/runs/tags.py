"""The tags on Dagster runs that tie them to ledger jobs, read by the sensors and the reaper."""

BATCH_TAG = "etl/batch"  # on batch runs; its value is the number of jobs in the batch
JOB_TAG_PREFIX = "etl-batch-job/"  # one tag per job of a batch: etl-batch-job/<job_id> = attempt
