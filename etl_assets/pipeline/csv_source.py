"""Read a CSV file in chunks of raw strings, numbering every record by its line in the file.

pandas' C parser reads the file (fast). If it meets a malformed record (a wrong number of
fields), reading goes on with Python's csv module from the record after the last chunk
already handed out, so the malformed records are quarantined instead of failing the file.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from etl_assets.datasets.base import ROW_NUMBER
from etl_assets.errors import PermanentError

FIRST_DATA_ROW = 2  # the header is line 1


@dataclass
class RawChunk:
    """Raw string rows (with ROW_NUMBER) and records too malformed to split into columns."""

    frame: pd.DataFrame
    malformed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Data rows in this chunk, well-formed or not."""
        return len(self.frame) + len(self.malformed)


def read_header(path: Path, required: Sequence[str], name: str = "") -> list[str]:
    """The file's normalized column names; raises PermanentError naming what is wrong.

    `name` is how errors call the file (the name it was submitted under).
    """
    name = name or path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise PermanentError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not header or all(not name.strip() for name in header):
        raise PermanentError(f"{name}: the file is empty (no header row)")
    columns = [name.strip().lower() for name in header]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise PermanentError(f"{name}: column(s) {', '.join(duplicated)} appear twice")
    missing = [c for c in required if c not in columns]
    if missing:
        raise PermanentError(
            f"{name}: missing required column(s) {', '.join(missing)}; "
            f"the header has {', '.join(columns)}"
        )
    return columns


def read_chunks(
    path: Path, columns: Sequence[str], chunk_rows: int, name: str = ""
) -> Iterator[RawChunk]:
    """Yield the file's data rows in chunks of at most `chunk_rows` records."""
    next_row = FIRST_DATA_ROW
    try:
        for frame in _fast_chunks(path, columns, chunk_rows):
            chunk = RawChunk(_drop_blank(frame))
            next_row = int(frame[ROW_NUMBER].iat[-1]) + 1
            yield chunk
    except pd.errors.ParserError:
        yield from _tolerant_chunks(path, columns, chunk_rows, start_row=next_row)
    except UnicodeDecodeError as exc:
        raise PermanentError(
            f"{name or path.name}: not UTF-8 text after line {next_row - 1} ({exc.reason})"
        ) from None


def _fast_chunks(path: Path, columns: Sequence[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    reader = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,  # keeps record numbers equal to line numbers
        header=0,
        names=list(columns),
        encoding="utf-8-sig",
        chunksize=chunk_rows,
    )
    with reader:
        for frame in reader:
            frame = frame.fillna("")
            frame[ROW_NUMBER] = frame.index.to_numpy() + FIRST_DATA_ROW
            yield frame


def _tolerant_chunks(
    path: Path, columns: Sequence[str], chunk_rows: int, start_row: int
) -> Iterator[RawChunk]:
    width = len(columns)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        numbered = enumerate(csv.reader(handle), start=FIRST_DATA_ROW - 1)
        next(numbered)  # the header
        records = itertools.dropwhile(lambda item: item[0] < start_row, numbered)
        while batch := list(itertools.islice(records, chunk_rows)):
            rows, numbers, malformed = [], [], []
            for number, record in batch:
                if len(record) == width:
                    rows.append(record)
                    numbers.append(number)
                elif any(value.strip() for value in record):
                    malformed.append(
                        {
                            "row_number": number,
                            "raw_row": {"line": ",".join(record)},
                            "reason": f"expected {width} fields, found {len(record)}",
                        }
                    )
            frame = pd.DataFrame(rows, columns=list(columns), dtype=str)
            frame[ROW_NUMBER] = pd.Series(numbers, dtype="int64")
            yield RawChunk(_drop_blank(frame), malformed)


def _drop_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """Blank lines are not data rows: drop them (their line numbers are simply skipped)."""
    data = frame.drop(columns=[ROW_NUMBER])
    blank = (data == "").all(axis=1)
    if not blank.any():
        return frame
    return frame[~blank].reset_index(drop=True)
