"""Turns CSV files into pending jobs: from the inbox folder or from `etl submit`.

The file is copied into a content-addressed archive (`<staging>/sources/<dataset>/<sha256>.csv`)
while its SHA-256 is computed, so the job's source never changes under it and the same content
is stored once. The same content submitted again for a dataset is a duplicate: no second job.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from etl_assets.datasets import dataset_for_header, dataset_names, get_dataset
from etl_assets.errors import PermanentError
from etl_assets.ledger import Job, Ledger

logger = logging.getLogger(__name__)

COPY_BUFFER = 1 << 20
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")
A_LINK = "a symbolic link (links are never followed)"


@dataclass(frozen=True)
class Published:
    """The job a file became, and whether it is new (False: a duplicate of an earlier file)."""

    job: Job
    created: bool


def source_archive(staging_dir: str | Path) -> Path:
    """Where submitted files are kept, by dataset and SHA-256, under the staging folder."""
    return Path(staging_dir) / "sources"


class NotARegularFile(PermanentError):
    """The path is a symbolic link, a FIFO, a device, a socket or a directory: only regular
    files are taken, so nothing outside the inbox (a link to /etc/passwd) is ever read."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: refused, it is {reason}; only regular files are taken")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Refused:
    """An inbox entry that was not taken, and why."""

    path: Path
    reason: str


def refusal(path: Path) -> str | None:
    """Why `path` is not taken as a file to submit, or None for a regular file.

    Looks at the entry itself (lstat): a symbolic link is refused, never followed.
    Raises FileNotFoundError when nothing is there.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return A_LINK
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular_file(path: Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file; raises NotARegularFile otherwise.

    The check is made again on the open file: O_NOFOLLOW refuses a link swapped in after the
    first look, O_NONBLOCK keeps a FIFO swapped in from blocking the open, and fstat says
    what was really opened.
    """
    try:
        reason = refusal(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if reason is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            reason = A_LINK
        else:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.set_blocking(fd, True)
                return os.fdopen(fd, "rb")
            os.close(fd)
            reason = "not a regular file"
    raise NotARegularFile(path, reason)


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
    several, NotARegularFile for a link or a special file, FileNotFoundError for a missing
    file.
    """
    if dataset:
        dataset = get_dataset(dataset).name
    with open_regular_file(path) as source:
        sha256, size, incoming = copy_in(source, archive_dir)
    try:
        # The header is read from the copy: what was checked is what the job reads.
        dataset = dataset or detect_dataset(incoming, path.name)
        archived = keep(incoming, archive_dir / dataset, sha256)
    finally:
        incoming.unlink(missing_ok=True)
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


def detect_dataset(path: Path, name: str = "") -> str:
    """The dataset whose columns the CSV file's header has; raises PermanentError."""
    from etl_assets.pipeline.csv_source import read_header

    name = name or path.name
    return dataset_for_header(read_header(path, (), name), name).name


def copy_in(source: BinaryIO, archive_dir: Path) -> tuple[str, int, Path]:
    """Copy `source` to a temporary file in `archive_dir`; returns (sha256, size, its path)."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=archive_dir, prefix=".incoming-", delete=False) as copy:
        while block := source.read(COPY_BUFFER):
            digest.update(block)
            copy.write(block)
            size += len(block)
    return digest.hexdigest(), size, Path(copy.name)


def keep(incoming: Path, folder: Path, sha256: str) -> Path:
    """Move the copied file into `folder` under its SHA-256 (once per content)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha256}.csv"
    if not target.exists():
        os.replace(incoming, target)
    return target


def settled_inbox_files(
    inbox_dir: Path, settle_seconds: float, refused: list[Refused] | None = None
) -> Iterator[tuple[str, Path]]:
    """(dataset, path) of each CSV in `inbox_dir/<dataset>/` unchanged for `settle_seconds`.

    A file still being written is left for a later tick; so are hidden and partial files
    (write to `name.csv.part`, then rename, to be safe with any settle time). Only regular
    files are taken: links (to a file or a dataset folder), FIFOs, devices, sockets and
    directories are logged and added to `refused`, never read.
    """
    now = time.time()
    for dataset in dataset_names():
        folder = inbox_dir / dataset
        if folder.is_symlink():  # a link would lead the inbox out of the inbox
            _refuse(refused, folder, A_LINK)
            continue
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.name.endswith(IGNORED_SUFFIXES):
                continue
            if path.suffix.lower() != ".csv":
                continue
            try:
                reason = refusal(path)
                if reason is None and now - os.lstat(path).st_mtime >= settle_seconds:
                    yield dataset, path
            except FileNotFoundError:  # gone since the listing: nothing to do
                continue
            if reason is not None:
                _refuse(refused, path, reason)


def _refuse(refused: list[Refused] | None, path: Path, reason: str) -> None:
    logger.warning("inbox: %s refused, it is %s; only regular files are taken", path, reason)
    if refused is not None:
        refused.append(Refused(path, reason))


def publish_inbox(
    ledger: Ledger,
    archive_dir: Path,
    inbox_dir: Path,
    settle_seconds: float,
    refused: list[Refused] | None = None,
) -> list[Published]:
    """Publish every settled inbox file and remove it (its content is safe in the archive).

    What is not a regular file is left where it is and added to `refused`, with the reason.
    Two publishers may watch one inbox (the inbox sensor, and `etl api`'s InboxWatcher): a
    file the other took first is gone, or is the same content, hence the same job.
    """
    published = []
    for dataset, path in settled_inbox_files(inbox_dir, settle_seconds, refused):
        try:
            published.append(publish_file(ledger, archive_dir, path, dataset=dataset))
        except NotARegularFile as exc:  # swapped in since it was listed
            _refuse(refused, path, exc.reason)
            continue
        except FileNotFoundError:  # taken since it was listed
            continue
        path.unlink(missing_ok=True)
    return published
