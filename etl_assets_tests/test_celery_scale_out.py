"""Scale-out on a real engine: the production profile with two warm Celery run workers
(`etl worker`), RabbitMQ on loopback as broker, PostgreSQL for Dagster's storage and for the
ledger and warehouse, and the real daemon. Jobs must spread over both workers, each job must
run exactly once, and the warehouse must hold every row.

Needs RabbitMQ at ETL_TEST_BROKER_URL (default amqp://guest:guest@127.0.0.1:5672//): skipped
with the reason when none answers, failed instead when ETL_REQUIRE_BROKER=1 (CI sets it).
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from conftest import emptied, postgres_database
from processes import REPO, background, wait_for_line, wait_until_finished, wait_until_runs_end

from etl_assets.config import Settings
from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.db import engine_for
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.ledger import JobStatus, Ledger
from etl_assets.ledger.schema import job_attempts
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.runtime.celery_app import READY_LINE
from etl_assets.runtime.instance import initialize_pools, write_dagster_home

BROKER_URL = os.environ.get("ETL_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BIN = Path(sys.executable).parent
JOBS, ROWS, WORKERS = 8, 50, 2

pytestmark = pytest.mark.daemon


@pytest.fixture
def broker_url() -> str:
    """The broker's URL, once it answers."""
    from kombu import Connection

    try:
        with Connection(BROKER_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means no broker
        reason = f"no broker at {BROKER_URL}: {exc}"
        if os.environ.get("ETL_REQUIRE_BROKER") == "1":
            pytest.fail(f"ETL_REQUIRE_BROKER=1 but {reason}")
        pytest.skip(reason)
    return BROKER_URL


def delete_queue(broker_url: str, queue: str) -> None:
    """Remove the test's private queue from the broker."""
    from kombu import Connection

    with Connection(broker_url) as connection:
        connection.default_channel.queue_delete(queue)


def test_two_celery_workers_share_the_jobs_and_run_each_once(
    broker_url: str,
    postgres_url: str,
    api: ReferenceApiServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = f"etl-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=emptied(postgres_url),
        fx_api_url=api.fx_url,
        catalog_api_url=api.catalog_url,
        celery_broker_url=broker_url,
        celery_queue=queue,
    ).resolved()
    with ExitStack() as stack:
        dagster_storage = stack.enter_context(postgres_database("etl_dagster"))
        env = os.environ | {
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            "DAGSTER_PG_URL": dagster_storage.replace("postgresql://", "postgresql+psycopg2://"),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_QUEUE": queue,
            "DATABASE_URL": settings.database_url,
            "DATA_DIR": settings.data_dir,
            "FX_API_URL": settings.fx_api_url,
            "CATALOG_API_URL": settings.catalog_api_url,
            "DISPATCH_INTERVAL_SECONDS": "1",
            "JOBS_PER_RUN": "1",  # one run per job here; batch runs: test_batch.py, the benchmark
            "MAX_CONCURRENT_JOBS": "4",
            "LOG_LEVEL": "INFO",
        }
        stack.callback(delete_queue, broker_url, queue)
        for name in ("DAGSTER_PG_URL", "CELERY_BROKER_URL"):  # this process reads the instance
            monkeypatch.setenv(name, env[name])
        write_dagster_home(tmp_path / "dagster_home", REPO / "dagster.yaml", settings, env)
        initialize_pools(tmp_path / "dagster_home")
        ledger = Ledger(engine_for(settings))
        archive = source_archive(settings.staging_dir)
        for n in range(JOBS):
            frame = sales_frame(ROWS, seed=n, order_prefix=f"SCALE{n}")
            path = write_sales_csv(tmp_path / "files" / f"scale_{n}.csv", frame)
            publish_file(ledger, archive, path, dataset="sales")

        names = [f"w{n}-{uuid.uuid4().hex[:6]}" for n in range(WORKERS)]
        for name in names:
            log = tmp_path / f"{name}.log"
            stack.enter_context(
                background([str(BIN / "etl"), "worker", "--name", f"{name}@%h"], env, log)
            )
        for name in names:
            wait_for_line(tmp_path / f"{name}.log", READY_LINE, timeout=90)
        daemon_log = tmp_path / "daemon.log"
        stack.enter_context(
            background(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, daemon_log
            )
        )
        found = wait_until_finished(ledger, JOBS, timeout=300)
        with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
            runs = wait_until_runs_end(instance, JOBS, timeout=60)

    assert all(job.status is JobStatus.COMPLETED for job in found), [j.error_message for j in found]
    assert {job.attempts for job in found} == {1}
    assert sorted(run.tags["etl/job_id"] for run in runs) == sorted(j.job_id for j in found)
    with ledger.engine.connect() as conn:
        workers = conn.execute(sa.select(job_attempts.c.job_id, job_attempts.c.worker)).all()
        facts = conn.execute(sa.text("SELECT count(*) FROM sales_fact")).scalar_one()
    assert len(workers) == JOBS  # one attempt per job: nothing ran twice
    assert {worker.split("@")[0] for _, worker in workers} == set(names)  # both took jobs
    assert facts == JOBS * ROWS


@pytest.mark.parametrize(
    ("module", "left_running"),
    [("etl_assets.runtime.celery_launcher", True), ("dagster_celery.launcher", False)],
)
def test_run_monitoring_leaves_a_running_celery_run_alone(
    broker_url: str, module: str, left_running: bool
) -> None:
    # A run on a worker, its task still PENDING as the rpc:// result backend reports it.
    # dagster-celery's own launcher lets run monitoring mark it failed while it runs (the
    # reaper then ran its jobs twice); ours does not.
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run
    from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

    launcher = {
        "module": module,
        "class": "CeleryRunLauncher",
        "config": {"broker": broker_url, "backend": "rpc://", "default_queue": "etl-unused"},
    }
    overrides = {"run_launcher": launcher, "run_monitoring": {"enabled": True}}
    with dg.instance_for_test(overrides=overrides) as instance:
        run = instance.add_run(
            dg.DagsterRun(
                job_name="sales_job",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags={DAGSTER_CELERY_TASK_ID_TAG: str(uuid.uuid4())},
            )
        )
        record = instance.get_run_record_by_id(run.run_id)
        assert record is not None
        monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
        status = instance.get_run_by_id(run.run_id).status  # type: ignore[union-attr]
    assert (status == dg.DagsterRunStatus.STARTED) is left_running
