"""Turns CSV files into pending jobs: from the inbox folder or from `etl submit`.

The file is copied into a content-addressed archive (`<staging>/sources/<dataset>/<sha256>.csv`)
while its SHA-256 is computed, so the job's source never changes under it and the same content
is stored once. The same content submitted again for a dataset is a duplicate: no second job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from etl_assets.datasets import dataset_for_header, dataset_names, get_dataset
from etl_assets.ledger import Job, Ledger

logger = logging.getLogger(__name__)

COPY_BUFFER = 1 << 20
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


@dataclass(frozen=True)
class Published:
    """The job a file became, and whether it is new (False: a duplicate of an earlier file)."""

    job: Job
    created: bool


def source_archive(staging_dir: str | Path) -> Path:
    """Where submitted files are kept, by dataset and SHA-256, under the staging folder."""
    return Path(staging_dir) / "sources"


def publish_file(
    ledger: Ledger,
    archive_dir: Path,
    path: Path,
    *,
    dataset: str | None = None,
    title: str | None = None,
    priority: int = 0,
) -> Published:
    """Archive `path` and create its pending job; commits.

    Without `dataset`, the file's header says which it is (the one dataset whose columns it
    has). Raises PermanentError for an unknown dataset or a header that fits none or
    several, FileNotFoundError for a missing file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    dataset = get_dataset(dataset).name if dataset else detect_dataset(path)
    sha256, size, archived = archive(path, archive_dir / dataset)
    job, created = ledger.create_job(
        dataset=dataset,
        source_uri=str(archived),
        source_name=path.name,
        content_sha256=sha256,
        size_bytes=size,
        title=title,
        priority=priority,
    )
    if created:
        logger.info(
            "job=%s registered: %s (%d bytes, dataset %s)", job.job_id, path.name, size, dataset
        )
    else:
        logger.info(
            "duplicate detected: %s has the content of job %s (sha256 %s), skipped",
            path.name,
            job.job_id,
            sha256[:12],
        )
    return Published(job, created)


def detect_dataset(path: Path) -> str:
    """The dataset whose columns the CSV file's header has; raises PermanentError."""
    from etl_assets.pipeline.csv_source import read_header

    return dataset_for_header(read_header(path, (), path.name), path.name).name


def archive(path: Path, folder: Path) -> tuple[str, int, Path]:
    """Copy `path` into `folder` under its SHA-256; returns (sha256, size, archived path)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source, tempfile.NamedTemporaryFile(dir=folder, delete=False) as copy:
        while block := source.read(COPY_BUFFER):
            digest.update(block)
            copy.write(block)
            size += len(block)
    sha256 = digest.hexdigest()
    target = folder / f"{sha256}.csv"
    if target.exists():
        os.unlink(copy.name)  # the same content is archived already
    else:
        os.replace(copy.name, target)
    return sha256, size, target


def settled_inbox_files(inbox_dir: Path, settle_seconds: float) -> Iterator[tuple[str, Path]]:
    """(dataset, path) of each CSV in `inbox_dir/<dataset>/` unchanged for `settle_seconds`.

    A file still being written is left for a later tick; so are hidden and partial files
    (write to `name.csv.part`, then rename, to be safe with any settle time).
    """
    now = time.time()
    for dataset in dataset_names():
        folder = inbox_dir / dataset
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.name.endswith(IGNORED_SUFFIXES):
                continue
            if not path.is_file() or path.suffix.lower() != ".csv":
                continue
            if now - path.stat().st_mtime >= settle_seconds:
                yield dataset, path


def publish_inbox(
    ledger: Ledger, archive_dir: Path, inbox_dir: Path, settle_seconds: float
) -> list[Published]:
    """Publish every settled inbox file and remove it (its content is safe in the archive)."""
    published = []
    for dataset, path in settled_inbox_files(inbox_dir, settle_seconds):
        published.append(publish_file(ledger, archive_dir, path, dataset=dataset))
        path.unlink()
    return published
