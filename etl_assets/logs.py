"""One log format for the platform: `[timestamp] [level] [component] message`.

The component is the logger's name without the `etl_assets.` prefix (`tracking`,
`warehouse.io_manager`, `alerts` ...); the timestamp is UTC, ISO 8601. While a job step
runs (`tracking.job_step` sets `job_logging`), every line logged on its thread carries
`job=<job id>`, so `grep job=01J...` finds all the work done on one job.

In a Dagster run, `python_logs: managed_python_loggers: [etl_assets]` in dagster.yaml also
sends these lines to the run's event log, so the UI shows them too.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

from etl_assets.terminal import inert

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(component)s] %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
PLATFORM_LOGGER = "etl_assets"

_current_job: ContextVar[str | None] = ContextVar("etl_job_id", default=None)


def current_job_id() -> str | None:
    """The job the current thread (or task) is working on, if any."""
    return _current_job.get()


@contextmanager
def job_logging(job_id: str) -> Iterator[None]:
    """Tag every platform log line emitted inside the block with `job=<job_id>`."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


class JobContextFilter(logging.Filter):
    """Adds `component` and `job_id` to each record (an explicit `extra={"job_id": ...}` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        name = record.name
        record.component = name.removeprefix(PLATFORM_LOGGER + ".") if name else "root"
        if getattr(record, "job_id", None) is None:
            record.job_id = current_job_id()
        return True


class PlatformFormatter(logging.Formatter):
    """The one format, with `job=<id>` put in front of a job's message that does not name it."""

    converter = time.gmtime  # type: ignore[assignment]  # UTC timestamps

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT, DATE_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        """Format the record, naming its job when the message does not already."""
        if not hasattr(record, "component"):  # a handler without the filter
            JobContextFilter().filter(record)
        job_id = getattr(record, "job_id", None)
        if job_id and f"job={job_id}" not in record.message:
            record.message = f"job={job_id} {record.message}"
        # Messages quote file names and titles from whoever submitted a file; stderr is often
        # an operator's terminal.
        record.message = inert(record.message, multiline=True)
        return super().formatMessage(record)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged (click and pytest swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return


def configure_logging(level: str = "INFO") -> None:
    """Send the platform's own loggers (`etl_assets.*`) to stderr in the one format at `level`.

    Idempotent: calling it again changes the level and keeps one handler. Handlers others
    added (Dagster's, during a run) are kept.
    """
    root = logging.getLogger(PLATFORM_LOGGER)
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(PlatformFormatter())
    handler.addFilter(JobContextFilter())
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    root.propagate = False  # the run's and the CLI's other handlers would print it twice


def parse_level(name: str) -> int:
    """The logging level called `name` (any case); ValueError naming LOG_LEVEL otherwise."""
    level = logging.getLevelName(name.strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"setting LOG_LEVEL={name!r} is not a log level (DEBUG, INFO, ...)")
    return level
