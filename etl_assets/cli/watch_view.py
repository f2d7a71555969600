"""`etl watch`: live progress of running jobs, redrawn every few seconds.

One frame is a header (time, how many jobs run and wait) and a table of the processing jobs
and those that finished in the last few minutes, each with a progress bar, rows done / total,
rate and time left. The figures come from the ops read model, as in the ops API.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from etl_assets.ledger.models import FINISHED_STATUSES, JobStatus
from etl_assets.ops import read_model as rm

BAR_WIDTH = 20
FRAME_COLUMNS = ("job_id", "file", "status", "progress", "rows", "rate", "eta", "note")


def progress_bar(percent: float | None, width: int = BAR_WIDTH) -> str:
    """`[#####---------------]  25.0%`, or an empty bar with `?` when the total is unknown."""
    if percent is None:
        return f"[{' ' * width}]     ?"
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return f"[{'#' * filled}{'-' * (width - filled)}] {percent:5.1f}%"


def duration(seconds: float | None) -> str:
    """A short human duration: `45s`, `3m05s`, `2h10m`; `-` when unknown."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def rows_text(done: int, total: int | None) -> str:
    """`250/1000` or `250/?`."""
    return f"{done}/{'?' if total is None else total}"


def rate_text(rows_per_second: float | None) -> str:
    """`12.5 rows/s`, or `-`."""
    return "-" if rows_per_second is None else f"{rows_per_second:.1f} rows/s"


def upload_row(upload: rm.Upload) -> list[str]:
    """One line of the frame's table."""
    note = upload.error_message or ""
    return [
        upload.job_id,
        upload.source_name,
        upload.status.value,
        progress_bar(upload.percent_complete),
        rows_text(upload.rows_processed, upload.rows_total),
        rate_text(upload.rows_per_second),
        duration(upload.eta_seconds) if upload.status is JobStatus.PROCESSING else "-",
        note if len(note) <= 60 else note[:57] + "...",
    ]


def header(overview: rm.UploadsOverview, now: dt.datetime) -> str:
    """The frame's first line."""
    return (
        f"{now:%Y-%m-%d %H:%M:%S} UTC   processing {overview.active_uploads}, "
        f"pending {overview.pending_uploads}"
    )


def job_lines(detail: rm.JobDetail) -> list[str]:
    """The frame of `etl watch --job`: one job's state and progress."""
    job, p = detail.job, detail.progress
    lines = [
        f"{job.job_id}  {job.source_name}  {job.status.value}  "
        f"attempt {job.attempts}/{job.max_attempts}",
        f"{progress_bar(p.percent_complete)}  {rows_text(p.rows_processed, p.rows_total)} rows  "
        f"{rate_text(p.rows_per_second)}  elapsed {duration(p.elapsed_seconds)}  "
        f"eta {duration(p.eta_seconds)}",
    ]
    if job.status in FINISHED_STATUSES:
        lines.append(
            f"loaded {job.rows_loaded}, quarantined {job.rows_quarantined}, "
            f"duplicates {job.rows_duplicate}"
        )
    if job.error_message:
        lines.append(f"last error ({job.error_type}): {job.error_message}")
    if detail.dagster_run_url:
        lines.append(f"run: {detail.dagster_run_url}")
    return lines


@dataclass
class Refresher:
    """Draws a frame every `interval` seconds until `count` frames (None: until Ctrl-C) or
    until `done()` says to stop after a frame."""

    draw: Callable[[], bool]  # draws one frame; returns True when watching should stop
    interval: float
    count: int | None = None
    sleep: Callable[[float], Any] = time.sleep

    def run(self) -> int:
        """Draw frames; returns how many were drawn. Ctrl-C stops quietly."""
        drawn = 0
        try:
            while True:
                finished = self.draw()
                drawn += 1
                if finished or (self.count is not None and drawn >= self.count):
                    return drawn
                self.sleep(self.interval)
        except KeyboardInterrupt:
            return drawn


def frame_rows(uploads: Sequence[rm.Upload]) -> list[list[str]]:
    """The table rows of a frame."""
    return [upload_row(u) for u in uploads]
