"""The Celery app that warm run workers serve (the production profile's run launcher).

Dagster's `CeleryRunLauncher` sends each run to the broker as a task; a worker started with
`etl worker` (that is, `celery -A etl_assets.runtime.celery_app worker`) executes it in a process
that has already imported Dagster, pandas and this code, so a run starts in a fraction of a
second instead of the ~3 s a new interpreter costs. The broker, result backend and queue
come from CELERY_BROKER_URL, CELERY_RESULT_BACKEND and CELERY_QUEUE (etl_assets/config.py);
`etl dagster-home` writes the matching `run_launcher` section into dagster.yaml.
"""

import sys
from typing import Any

from celery.signals import worker_ready
from dagster_celery.config import DEFAULT_CONFIG
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from etl_assets.config import Settings

_settings = Settings.from_env()

app = make_app(
    app_args={
        "broker": _settings.celery_broker_url,
        "backend": _settings.celery_result_backend,
        "include": [],
        "config_source": dict(DEFAULT_CONFIG),
        "task_default_queue": _settings.celery_queue,
    }
)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)


READY_LINE = "etl worker ready"


def _say_ready(sender: Any = None, **_: Any) -> None:
    """One line once the worker takes runs, whatever LOG_LEVEL is (Celery's own "ready."
    is an INFO line): deploy scripts, tests and benchmarks wait for it."""
    print(f"{READY_LINE}: {getattr(sender, 'hostname', '?')}", file=sys.stderr, flush=True)


worker_ready.connect(_say_ready)
