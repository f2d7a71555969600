"""The one log format, the job id on every line of job work, the job events, and LOG_LEVEL."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Platform

from etl_assets.logs import configure_logging, job_logging

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] \[(\w+)\] \[([\w.]+)\] (.*)$")


@pytest.fixture
def platform_logger() -> Iterator[logging.Logger]:
    """The platform logger, put back as it was after the test (others rely on caplog)."""
    logger = logging.getLogger("etl_assets")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def lines(text: str) -> list[tuple[str, str, str]]:
    """(level, component, message) of every line; fails on a line not in the one format."""
    parsed = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, f"not in the one format: {line!r}"
        parsed.append((match[1], match[2], match[3]))
    return parsed


def test_the_one_format_names_the_component(
    platform_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    configure_logging("INFO")  # idempotent: still one line per record
    logging.getLogger("etl_assets.warehouse.load").info("chunk %d committed", 3)
    assert lines(capsys.readouterr().err) == [("INFO", "warehouse.load", "chunk 3 committed")]


def test_job_work_names_the_job_once(
    platform_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    log = logging.getLogger("etl_assets.runs.tracking")
    with job_logging("01JOB"):
        log.warning("step failed")
        log.info("loaded: job=%s, created 3", "01JOB")
    log.info("outside any job")
    assert [m for _, _, m in lines(capsys.readouterr().err)] == [
        "job=01JOB step failed",
        "loaded: job=01JOB, created 3",
        "outside any job",
    ]


def test_log_level_is_honoured(
    platform_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("warning")
    log = logging.getLogger("etl_assets.intake.publisher")
    log.info("hidden")
    log.warning("shown")
    assert lines(capsys.readouterr().err) == [("WARNING", "intake.publisher", "shown")]
    with pytest.raises(ValueError, match="LOG_LEVEL='LOUD' is not a log level"):
        configure_logging("LOUD")


def test_a_job_run_logs_its_events_each_with_the_job_id(
    platform: Platform, platform_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    job = platform.submit("north.csv", rows=40, every=10)
    capsys.readouterr()
    [result] = platform.run_all()
    assert result.success
    platform_lines = lines(
        "\n".join(line for line in capsys.readouterr().err.splitlines() if line.startswith("[20"))
    )
    messages = [m for _, _, m in platform_lines]
    assert messages, "the run logged nothing in the platform format"
    assert all(f"job={job.job_id}" in m for m in messages), messages
    done = platform.ledger.get(job.job_id)
    assert f"upload started: job={job.job_id}, rows={done.rows_loaded}" in messages
    assert (
        f"loaded: job={job.job_id}, created {done.rows_loaded}, "
        f"quarantined {done.rows_quarantined}, duplicates 0"
    ) in messages
    assert done.rows_quarantined == 4


def test_the_code_location_honours_log_level_in_a_new_process(tmp_path: object) -> None:
    """A run process imports the code location: LOG_LEVEL must apply there too."""
    code = "import logging, etl_assets.definitions; print(logging.getLogger('etl_assets').level)"
    env = {**os.environ, "LOG_LEVEL": "DEBUG", "DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(logging.DEBUG)


def test_the_run_event_log_shows_the_platform_lines(
    platform: Platform, platform_logger: logging.Logger
) -> None:
    """With dagster.yaml's `python_logs`, the Dagster UI shows the same lines as stderr."""
    import dagster as dg
    import yaml

    from etl_assets.definitions import build_definitions
    from etl_assets.runtime.local_daemon import LocalDaemon

    configure_logging("INFO")
    python_logs = yaml.safe_load((REPO / "dagster.yaml").read_text())["python_logs"]
    with dg.instance_for_test(overrides={"python_logs": python_logs}) as instance:
        daemon = LocalDaemon(build_definitions(platform.settings), instance)
        job = platform.submit("south.csv", rows=20)
        [result] = daemon.drain()
        assert result.success
        messages = [
            record.user_message
            for record in instance.all_logs(result.run_id)
            if record.user_message.startswith(("upload started", "loaded"))
        ]
    done = platform.ledger.get(job.job_id)
    assert messages == [
        f"upload started: job={job.job_id}, rows=20",
        f"loaded: job={job.job_id}, created {done.rows_loaded}, quarantined 0, duplicates 0",
    ]
