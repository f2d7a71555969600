"""Repairs an operator asks for, shared by the `etl` command line and the ops API.

Retrying or cancelling a job and retrying quarantined rows each go through the ledger's
compare-and-set transitions; this module adds what both front ends need around them (the
retry priority from the settings, terminating a cancelled job's Dagster run, the API clients
a row retry enriches with), so the CLI and the API cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import requests

from etl_assets.config import Settings
from etl_assets.errors import TransientError, classify
from etl_assets.ledger import ErrorType, Job, Ledger

if TYPE_CHECKING:  # imported lazily: they bring dagster and pandas, slow for a CLI
    from etl_assets.pipeline.row_retry import EnrichmentClients, RowRetryResult


def add_partitions(jobs: Sequence[Job]) -> str | None:
    """Add the jobs' partitions (each in its dataset's) now when a Dagster instance is
    configured (else the dispatch sensor adds them when it claims the jobs). Returns a note
    when that could not be done."""
    if not jobs or not Settings.from_env().dagster_home:
        return None
    import dagster as dg

    from etl_assets.datasets import get_dataset

    by_dataset: dict[str, list[str]] = {}
    for job in jobs:
        by_dataset.setdefault(get_dataset(job.dataset).partitions_name, []).append(job.job_id)
    try:
        with dg.DagsterInstance.get() as instance:
            for name, keys in by_dataset.items():
                instance.add_dynamic_partitions(name, keys)
    except Exception as exc:  # noqa: BLE001 - the jobs are in the ledger; this is a nicety
        return f"partitions not added now ({exc}); the dispatcher will add them"
    return None


def retry_jobs(
    ledger: Ledger,
    settings: Settings,
    job_ids: Sequence[str] = (),
    *,
    all_failed: bool = False,
    error_type: ErrorType | None = None,
    priority: int | None = None,
) -> list[Job]:
    """Put failed jobs (the ones named, or every failed one) back to pending; commits each.

    They get a fresh attempt budget and at least `priority` (default RETRY_PRIORITY), so a
    manual retry goes ahead of the queue. A named job may also be a cancelled one. Raises
    JobNotFound or IllegalTransition for a named job that does not exist or is neither.
    """
    chosen = settings.retry_priority if priority is None else priority
    if all_failed:
        return ledger.retry_failed(error_type=error_type, priority=chosen)
    return [ledger.retry(job_id, priority=chosen) for job_id in job_ids]


@dataclass(frozen=True)
class Cancelled:
    """A cancelled job and what happened to its Dagster run (None when it had none)."""

    job: Job
    run_note: str | None


def cancel_job(ledger: Ledger, job_id: str) -> Cancelled:
    """Cancel a pending or processing job; a running job's Dagster run is asked to terminate."""
    job = ledger.cancel(job_id)
    return Cancelled(job, terminate_run(job.run_id) if job.run_id else None)


def terminate_run(run_id: str) -> str:
    """Ask Dagster to terminate a run; the run also stops by itself at its next heartbeat."""
    if not Settings.from_env().dagster_home:
        return f"run {run_id}: stops at its next heartbeat (set DAGSTER_HOME to terminate it now)"
    import dagster as dg

    from etl_assets.runs.recovery import terminate_unless_batch

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return f"run {run_id}: already ended"
        if not terminate_unless_batch(instance, run_id):
            return f"run {run_id}: a batch run; the job leaves it at its next heartbeat"
        return f"run {run_id}: termination requested"


def enrichment_for(settings: Settings) -> EnrichmentClients:
    """The enrichment API clients and the reporting currency the settings give."""
    from etl_assets.pipeline.row_retry import EnrichmentClients
    from etl_assets.resources.apis import enrichment_clients

    return EnrichmentClients(enrichment_clients(settings), settings.reporting_currency)


class EnrichmentFailure(Exception):
    """A row retry stopped because an enrichment API failed. `retryable`: it is down, slow or
    overloaded (try again later); otherwise it refused the request (HTTP 4xx). The message
    names the API and is safe to show: no query string, no token."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def enrichment_failure(exc: Exception, settings: Settings) -> EnrichmentFailure:
    """Classify an FX or catalog API error like a job's, and say which API it was."""
    classified = classify(exc)
    name, base = _which_api(exc, settings)
    if classified.retryable:
        return EnrichmentFailure(
            f"the {name} at {base} is unreachable or failing ({classified.message}); "
            "the rows not retried stay quarantined: try again later (`etl doctor` checks it)",
            retryable=True,
        )
    return EnrichmentFailure(
        f"the {name} at {base} refused the request ({classified.message}); check its "
        "settings (URL, token): `etl doctor` checks them",
        retryable=False,
    )


def _which_api(exc: Exception, settings: Settings) -> tuple[str, str]:
    request = getattr(exc, "request", None)
    url = (getattr(request, "url", None) or "").split("?")[0]
    for name, base in (("FX API", settings.fx_api_url), ("catalog API", settings.catalog_api_url)):
        if url and url.startswith(base.rstrip("/")):
            return name, base.split("?")[0]
    return "enrichment API", url or "its URL"


def retry_failed_rows(
    ledger: Ledger,
    settings: Settings,
    *,
    row_ids: Sequence[int] | None = None,
    job_id: str | None = None,
    fixes: Mapping[str, str] | None = None,
) -> RowRetryResult:
    """Validate, enrich and load quarantined rows again (after `fixes`); commits per job.
    Raises EnrichmentFailure when the FX or catalog API fails (rows of jobs done by then
    stay done)."""
    from etl_assets.pipeline.row_retry import retry_rows

    try:
        return retry_rows(
            ledger, enrichment_for(settings), row_ids=row_ids or None, job_id=job_id, fixes=fixes
        )
    except (TransientError, requests.RequestException) as exc:
        raise enrichment_failure(exc, settings) from exc
