"""Every text the ledger stores is NUL-free: PostgreSQL text and JSONB cannot hold a NUL, and
a write that fails on one would leave a job unable to record why it failed."""

from __future__ import annotations

from test_ledger import processing_job

from etl_assets.errors import PermanentError, classify
from etl_assets.ledger import ErrorType, Ledger, quarantine


def test_a_failure_quoting_a_nul_is_recorded(ledger: Ledger) -> None:
    job = processing_job(ledger)
    error = classify(PermanentError("in.csv: header 'a\x00b' is not valid"))
    assert "\x00" not in error.message + error.traceback  # also bound for Dagster's event log

    failed = ledger.fail(
        job.job_id,
        error_type=ErrorType.PERMANENT,
        message="in.csv: header 'a\x00b'",
        traceback="Traceback\x00...",
        run_id="run-1",
    )

    stored = ledger.get(failed.job_id)
    assert stored.error_message == "in.csv: header 'a\\x00b'"
    assert stored.error_traceback == "Traceback\\x00..."
    [attempt] = ledger.attempts(job.job_id)
    assert attempt["error_message"] == "in.csv: header 'a\\x00b'"


def test_a_quarantined_row_with_a_nul_is_kept(ledger: Ledger) -> None:
    job = processing_job(ledger)
    with ledger.engine.begin() as conn:
        quarantine.add_rows(
            conn,
            job.job_id,
            "validate",
            [{"row_number": 2, "raw_row": {"sku\x00": "A\x00B"}, "reason": "sku: 'A\x00B' bad"}],
        )
    [row] = ledger.quarantined(job.job_id)
    assert row["raw_row"] == {"sku\\x00": "A\\x00B"} and row["reason"] == "sku: 'A\\x00B' bad"
