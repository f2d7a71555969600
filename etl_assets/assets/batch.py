"""Batch runs: many small jobs in one Dagster run.

A run of the asset job costs about a second of Dagster bookkeeping (run creation, ~40 events,
four steps) whatever the job's size; for a 100-row file that is nearly all of its cost. The
dispatch sensor therefore groups small jobs into one run of `etl_batch_job`, whose single op
runs each job's whole pipeline in turn (pipeline/whole_job.py) and records, for each job that
completes, one materialization of each asset for the job's partition: the asset graph, the
partitions and the lineage in the UI look the same as for per-job runs.

Each job in a batch is on its own: it is attached to the run when the batch starts, has its
own heartbeat until it is done, and its failure is recorded in the ledger (requeued with
backoff, or failed) without failing or delaying the others. Once every job has had its turn,
a batch in which a job failed fails the run (`dagster.Failure` naming the failed jobs), so the
Runs page shows it; the jobs' outcomes are all recorded by then, and the run-failure sensor
only puts back jobs the run still held (processing), which those are not. When something
outside any job breaks, the run fails too, and the sensor puts back every job it still held.
"""

import logging
from collections.abc import Sequence

import dagster as dg

from etl_assets.datasets import Dataset
from etl_assets.ledger import Job, JobStatus
from etl_assets.ledger.errors import IllegalTransition, JobNotFound
from etl_assets.pipeline.whole_job import run_whole_job
from etl_assets.resources.ledger import LedgerResource
from etl_assets.resources.pipeline import PipelineSettingsResource
from etl_assets.runs.tags import BATCH_TAG, JOB_TAG_PREFIX
from etl_assets.runs.tracking import Heartbeat, worker_identity

__all__ = ["BATCH_JOB", "BATCH_TAG", "JOB_TAG_PREFIX", "build_batch_job"]

BATCH_JOB = "etl_batch_job"
FAILED_OUTCOME = "failed"

logger = logging.getLogger(__name__)


class BatchConfig(dg.Config):
    """The jobs of one batch, in the order they are run."""

    job_ids: list[str]


def build_batch_job(datasets: Sequence[Dataset]) -> dg.JobDefinition:
    """The batch job over jobs of any of `datasets` (it needs every API client they use)."""
    api_keys = sorted({e.resource for d in datasets for e in d.enrichments})

    @dg.op(
        name="run_job_batch",
        description="Run the whole pipeline of each small job in the batch, one after the other.",
        out=dg.Out(dg.Nothing),  # everything goes to the ledger and the warehouse
        required_resource_keys={"ledger", "staging", "pipeline", *api_keys},
    )
    def run_job_batch(context: dg.OpExecutionContext, config: BatchConfig) -> None:
        """Every job of the batch (see the module doc)."""
        _run_batch(context, config, api_keys)

    @dg.job(
        name=BATCH_JOB,
        executor_def=dg.in_process_executor,  # one op; and Celery's run workers cannot fork
        description="Validate, enrich, transform and load a batch of small CSV jobs in one run.",
    )
    def etl_batch_job() -> None:
        """One op: every job of the batch (see the module doc)."""
        run_job_batch()

    return etl_batch_job


def _run_batch(context: dg.OpExecutionContext, config: BatchConfig, api_keys: list[str]) -> None:
    """Every job of the batch, each recorded in the ledger and, when it completes, as a
    materialization of each asset for its partition."""
    run_id = context.run_id
    resources = context.resources
    ledger: LedgerResource = resources.ledger
    clients = {key: getattr(resources, key) for key in api_keys}
    heartbeats = _attach(ledger, config.job_ids, run_id, resources.pipeline)
    outcomes: dict[str, str] = {}
    try:
        for job_id in config.job_ids:
            if job_id not in heartbeats:
                outcomes[job_id] = "skipped: held elsewhere or finished"
                continue
            job, heartbeat = heartbeats[job_id]
            try:
                metadata = run_whole_job(
                    job_id,
                    job.dataset,
                    run_id,
                    ledger=ledger,
                    staging=resources.staging,
                    pipeline=resources.pipeline,
                    clients=clients,
                )
            except dg.Failure as failure:  # already recorded in the ledger by job_step
                outcomes[job_id] = _not_completed(ledger, job_id, failure)
                continue
            finally:
                heartbeats.pop(job_id)[1].stop()
            for key, values in metadata.items():
                context.log_event(
                    dg.AssetMaterialization(asset_key=key, partition=job_id, metadata=values)
                )
            outcomes[job_id] = "completed"
    finally:
        for _job, heartbeat in heartbeats.values():
            heartbeat.stop()
    done = sum(outcome == "completed" for outcome in outcomes.values())
    context.log.info(f"batch of {len(outcomes)} jobs: {done} completed")
    failed = {job_id: o for job_id, o in outcomes.items() if o.startswith(FAILED_OUTCOME)}
    if failed:
        # Everything is recorded (ledger, materializations of the completed jobs): failing
        # the run now only makes the Runs page show that a job of the batch failed. The
        # run-failure sensor then finds those jobs no longer processing and leaves them be.
        raise dg.Failure(
            description=f"{len(failed)} of the batch's {len(outcomes)} jobs failed "
            f"({done} completed): " + "; ".join(f"job {j} {o}" for j, o in failed.items()),
            metadata={"jobs": len(outcomes), "completed": done, **outcomes},
            allow_retries=False,
        )
    context.add_output_metadata({"jobs": len(outcomes), "completed": done, **outcomes})


def _not_completed(ledger: LedgerResource, job_id: str, failure: dg.Failure) -> str:
    """The outcome of a job whose pipeline raised: a failed attempt (the job requeued or
    dead-lettered), unless the job was cancelled, which is an operator's choice, not a
    failure."""
    try:
        cancelled = ledger.ledger.get(job_id).status is JobStatus.CANCELLED
    except Exception:  # noqa: BLE001 - the database may be what failed: count it as failed
        cancelled = False
    if cancelled:
        return f"cancelled: {failure.description}"
    return f"{FAILED_OUTCOME}: {failure.description}"


def _attach(
    ledger: LedgerResource, job_ids: list[str], run_id: str, pipeline: PipelineSettingsResource
) -> dict[str, tuple[Job, Heartbeat]]:
    """Attach every job of the batch to this run now, each with a heartbeat, so the reaper
    sees them alive while they wait for their turn. Jobs that cannot be attached (cancelled
    meanwhile, say) are left out."""
    attached: dict[str, tuple[Job, Heartbeat]] = {}
    worker = worker_identity()
    for job_id in job_ids:
        try:
            job = ledger.ledger.begin_run(job_id, run_id, worker=worker)
        except (IllegalTransition, JobNotFound) as exc:
            logger.warning("job=%s not run in batch %s: %s", job_id, run_id, exc)
            continue
        seconds = pipeline.heartbeat_seconds
        heartbeat = Heartbeat(ledger.ledger, job_id, run_id, seconds, logger).start()
        attached[job_id] = (job, heartbeat)
    return attached
