"""The production profile's run launcher: dagster-celery's, without the worker health check.

Dagster's run monitoring asks a launcher that supports it how each started run's worker is
doing. dagster-celery answers from the run's Celery task state, and a task that is running
reads PENDING: Celery reports STARTED only with `task_track_started`, and the default
`rpc://` result backend answers only the process that sent the task. Monitoring calls that
UNKNOWN and marks the running run failed; the reaper then requeued its jobs and they ran a
second time (the 500-job benchmark on two workers: 5 to 14 jobs in about one run of three).
The run itself went on and ended in success, so Dagster's UI showed nothing wrong.

Without the check, run monitoring still fails runs that do not start in time or run too long
(dagster.yaml), and the ledger's heartbeat reaper requeues the jobs of a worker that died.
"""

from dagster_celery.launcher import CeleryRunLauncher as DagsterCeleryRunLauncher


class CeleryRunLauncher(DagsterCeleryRunLauncher):
    """dagster-celery's CeleryRunLauncher minus its worker health check (see the module)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        """No: the task state it would read says PENDING for a running run."""
        return False
