"""The jobs ledger: one row per CSV job, its attempts and its quarantined rows."""

from etl_assets.ledger.ledger import Ledger
from etl_assets.ledger.models import ErrorType, Job, JobStatus

__all__ = ["ErrorType", "Job", "JobStatus", "Ledger"]
