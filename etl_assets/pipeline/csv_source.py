"""Read a CSV file in chunks of raw strings, numbering every record by its line in the file.

pandas' C parser reads the file (fast). If it meets a malformed record (a wrong number of
fields), reading goes on with Python's csv module from the record after the last chunk
already handed out, so the malformed records are quarantined instead of failing the file.

A file that cannot be read as CSV at all fails with a PermanentError that names the file,
the line and the cause: not UTF-8, a NUL byte, malformed quoting (a quote never closed), a
field longer than `CSV_MAX_FIELD_CHARS`, a header wider than `CSV_MAX_COLUMNS`, a record
longer than `CSV_MAX_LINE_CHARS`. A cell longer than `CSV_MAX_CELL_CHARS` only sets its row
aside: quarantined, with the start of the value.

Both parsers read the file through `BoundedRecords`, which counts each record's bytes as they
arrive and refuses one over `CSV_MAX_LINE_CHARS` there: a 50 MB cell, or an unclosed quote
that would make the rest of the file one field, is refused after at most that much is read,
never held whole.
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.config import Settings
from etl_assets.datasets.base import ROW_NUMBER
from etl_assets.errors import PermanentError
from etl_assets.resources.pipeline import PipelineSettingsResource

FIRST_DATA_ROW = 2  # the header is line 1
KEPT_PREFIX_CHARS = 200  # how much of an over-long value a quarantined row keeps
SCAN_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class CsvLimits:
    """How much of a file the reader takes (see the CSV_MAX_* settings)."""

    max_columns: int = 1000
    max_cell_chars: int = 10_000
    max_field_chars: int = 1_000_000
    max_line_chars: int = 2_000_000

    @property
    def max_record_bytes(self) -> int:
        """The record limit in force: CSV_MAX_LINE_CHARS, never below the field limit (a
        record must be able to hold the longest field the reader takes)."""
        return max(self.max_line_chars, self.max_field_chars)

    @classmethod
    def from_settings(cls, settings: Settings) -> CsvLimits:
        """The limits configured in `settings`."""
        return cls(
            max_columns=settings.csv_max_columns,
            max_cell_chars=settings.csv_max_cell_chars,
            max_field_chars=settings.csv_max_field_chars,
            max_line_chars=settings.csv_max_line_chars,
        )

    @classmethod
    def from_pipeline(cls, pipeline: PipelineSettingsResource) -> CsvLimits:
        """The limits of a run: its pipeline resource's, built from the run's settings."""
        return cls(
            max_columns=pipeline.csv_max_columns,
            max_cell_chars=pipeline.csv_max_cell_chars,
            max_field_chars=pipeline.csv_max_field_chars,
            max_line_chars=pipeline.csv_max_line_chars,
        )


def limits_in_force() -> CsvLimits:
    """The configured limits, from the environment. A run passes its own (the pipeline
    resource's); the readers not given any (`etl submit`, a row retry) use these, so every
    path bounds a file the same way."""
    return CsvLimits.from_settings(Settings.from_env())


@dataclass
class RawChunk:
    """Raw string rows (with ROW_NUMBER) and records too malformed to split into columns."""

    frame: pd.DataFrame
    malformed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        """Data rows in this chunk, well-formed or not."""
        return len(self.frame) + len(self.malformed)


def read_header(
    path: Path, required: Sequence[str], name: str = "", limits: CsvLimits | None = None
) -> list[str]:
    """The file's normalized column names; raises PermanentError naming what is wrong.

    `name` is how errors call the file (the name it was submitted under).
    """
    name = name or path.name
    limits = limits or limits_in_force()
    try:
        with _open_text(path, name, limits) as handle:
            header = next(_csv_reader(handle, limits), None)
    except UnicodeDecodeError:
        raise PermanentError(_not_utf8(path, name)) from None
    except csv.Error as exc:
        raise PermanentError(f"{name}: line 1 (the header): {_csv_cause(exc, limits)}") from None
    if not header or all(not column.strip() for column in header):
        raise PermanentError(f"{name}: the file is empty (no header row)")
    if any("\x00" in column for column in header):
        raise PermanentError(f"{name}: line 1 (the header) holds a NUL byte; this is not CSV text")
    if len(header) > limits.max_columns:
        raise PermanentError(
            f"{name}: line 1 (the header) has {len(header)} columns, more than "
            f"CSV_MAX_COLUMNS ({limits.max_columns})"
        )
    longest = max(range(len(header)), key=lambda i: len(header[i]))
    if len(header[longest]) > limits.max_cell_chars:
        raise PermanentError(
            f"{name}: line 1 (the header): column {longest + 1} has {len(header[longest])} "
            f"characters, more than CSV_MAX_CELL_CHARS ({limits.max_cell_chars})"
        )
    columns = [column.strip().lower() for column in header]
    counts = collections.Counter(columns)  # linear: a wide header must not cost its square
    duplicated = sorted(c for c, n in counts.items() if n > 1)
    if duplicated:
        raise PermanentError(f"{name}: column(s) {', '.join(duplicated)} appear twice")
    missing = [c for c in required if c not in counts]
    if missing:
        raise PermanentError(
            f"{name}: missing required column(s) {', '.join(missing)}; "
            f"the header has {_listed(columns)}"
        )
    return columns


def _listed(columns: Sequence[str], most: int = 20, width: int = 40) -> str:
    """The header's columns for a message, bounded whatever the header's size."""
    shown = [c if len(c) <= width else c[: width - 3] + "..." for c in columns[:most]]
    more = f" and {len(columns) - most} more" if len(columns) > most else ""
    return ", ".join(shown) + more


def read_chunks(
    path: Path,
    columns: Sequence[str],
    chunk_rows: int,
    name: str = "",
    limits: CsvLimits | None = None,
) -> Iterator[RawChunk]:
    """Yield the file's data rows in chunks of at most `chunk_rows` records.

    Raises PermanentError (naming the file, the line and the cause) when the file is not
    readable CSV; rows with a cell over `max_cell_chars` come out as malformed records.
    """
    name = name or path.name
    limits = limits or limits_in_force()
    refuse_nul_bytes(path, name)
    next_row = FIRST_DATA_ROW
    try:
        try:
            for frame in _fast_chunks(path, columns, chunk_rows, name, limits):
                next_row = int(frame[ROW_NUMBER].iat[-1]) + 1
                yield _bounded(RawChunk(_drop_blank(frame)), limits, name)
        except (pd.errors.ParserError, pd.errors.ParserWarning):
            for chunk in _tolerant_chunks(path, columns, chunk_rows, next_row, limits, name):
                yield _bounded(chunk, limits, name)
    except UnicodeDecodeError:
        raise PermanentError(_not_utf8(path, name)) from None


def _not_utf8(path: Path, name: str) -> str:
    """Why the file is not UTF-8, naming the first line that is not (read again, line by line:
    the decoder's own position is within a buffer, not the file)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                return f"{name}: line {number} is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return f"{name}: not UTF-8 text"


def refuse_nul_bytes(path: Path, name: str) -> None:
    """Raise PermanentError naming the line of the file's first NUL byte, if it has one.

    A NUL is never CSV text (often a binary or UTF-16 file); pandas and Python's csv module
    would each read it differently, so the file is refused before either does.
    """
    lines_before = 0
    with path.open("rb") as handle:
        while block := handle.read(SCAN_BLOCK_BYTES):
            at = block.find(b"\x00")
            if at >= 0:
                line = lines_before + block.count(b"\n", 0, at) + 1
                raise PermanentError(f"{name}: line {line} holds a NUL byte; this is not CSV text")
            lines_before += block.count(b"\n")


def _csv_reader(handle: Any, limits: CsvLimits) -> Any:
    # The field limit is process-wide in Python's csv module; every reader here sets it to
    # the configured one before reading. strict: malformed quoting is an error, not a guess.
    csv.field_size_limit(limits.max_field_chars)
    return csv.reader(handle, strict=True)


def _csv_cause(exc: csv.Error, limits: CsvLimits) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return (
            f"a field longer than CSV_MAX_FIELD_CHARS ({limits.max_field_chars}) characters "
            "(often a quote that is never closed)"
        )
    if "unexpected end of data" in text:
        return "a quoted field is not closed before the end of the file"
    return f"malformed CSV ({text})"


def _fast_chunks(
    path: Path, columns: Sequence[str], chunk_rows: int, name: str, limits: CsvLimits
) -> Iterator[pd.DataFrame]:
    with _open_bounded(path, name, limits) as source:
        yield from _pandas_chunks(source, columns, chunk_rows)


def _pandas_chunks(
    source: io.BufferedReader, columns: Sequence[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    reader = pd.read_csv(
        source,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,  # keeps record numbers equal to line numbers
        header=0,
        names=list(columns),
        encoding="utf-8-sig",
        chunksize=chunk_rows,
        # Without it, a first record with surplus fields makes pandas read its first fields as
        # the index and shift every column; with it, pandas cuts them off and only warns.
        index_col=False,
    )
    with reader:
        while True:
            with warnings.catch_warnings():
                # The cut-off warning is a malformed record: the tolerant reader takes over.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = next(reader, None)
            if frame is None:
                return
            if frame.empty:  # nothing under the header (its index may not even be numbers)
                continue
            frame = frame.fillna("")
            frame[ROW_NUMBER] = frame.index.to_numpy() + FIRST_DATA_ROW
            yield frame


def _tolerant_chunks(
    path: Path,
    columns: Sequence[str],
    chunk_rows: int,
    start_row: int,
    limits: CsvLimits,
    name: str,
) -> Iterator[RawChunk]:
    width = len(columns)
    with _open_text(path, name, limits) as handle:
        reader = _csv_reader(handle, limits)
        last_end = [0]  # the physical line the last good record ended on

        def tracked() -> Iterator[list[str]]:
            for values in reader:
                last_end[0] = reader.line_num
                yield values

        numbered = enumerate(tracked(), start=FIRST_DATA_ROW - 1)
        try:
            next(numbered)  # the header
            records = itertools.dropwhile(lambda item: item[0] < start_row, numbered)
            while batch := list(itertools.islice(records, chunk_rows)):
                yield _tolerant_chunk(batch, columns, width, limits)
        except csv.Error as exc:
            # Physical lines: the one an editor shows where the bad record starts.
            raise PermanentError(
                f"{name}: line {last_end[0] + 1}: {_csv_cause(exc, limits)}"
            ) from None


def _tolerant_chunk(
    batch: list[tuple[int, list[str]]], columns: Sequence[str], width: int, limits: CsvLimits
) -> RawChunk:
    rows, numbers, malformed = [], [], []
    for number, record in batch:
        if len(record) == width:
            rows.append(record)
            numbers.append(number)
        elif any(value.strip() for value in record):
            line = ",".join(record)
            reason = f"expected {width} fields, found {len(record)}"
            if len(line) > limits.max_cell_chars:
                reason += (
                    f"; the line has {len(line)} characters, kept: the first {KEPT_PREFIX_CHARS}"
                )
                line = line[:KEPT_PREFIX_CHARS]
            malformed.append({"row_number": number, "raw_row": {"line": line}, "reason": reason})
    frame = pd.DataFrame(rows, columns=list(columns), dtype=str)
    frame[ROW_NUMBER] = pd.Series(numbers, dtype="int64")
    return RawChunk(_drop_blank(frame), malformed)


def _bounded(chunk: RawChunk, limits: CsvLimits, name: str) -> RawChunk:
    """Set aside the rows with a cell over `max_cell_chars`; refuse a field over
    `max_field_chars` (pandas has no field limit of its own)."""
    frame = chunk.frame
    data_columns = [c for c in frame.columns if c != ROW_NUMBER]
    if frame.empty or not data_columns:
        return chunk
    if max(_longest_bytes(frame[c]) for c in data_columns) <= limits.max_cell_chars:
        return chunk  # no value has more bytes than the limit has characters: none is over
    lengths = pd.DataFrame({c: frame[c].str.len() for c in data_columns})
    too_long = (lengths > limits.max_cell_chars).to_numpy()
    if not too_long.any():
        return chunk
    longest = lengths.to_numpy().max(axis=1)
    if (longest > limits.max_field_chars).any():
        line = int(frame[ROW_NUMBER].iat[int(np.argmax(longest > limits.max_field_chars))])
        raise PermanentError(
            f"{name}: line {line}: a field longer than CSV_MAX_FIELD_CHARS "
            f"({limits.max_field_chars}) characters (often a quote that is never closed)"
        )
    over = too_long.any(axis=1)
    malformed = list(chunk.malformed)
    for position in np.flatnonzero(over):
        row = frame.iloc[position]
        cut = {c for c, long in zip(data_columns, too_long[position], strict=True) if long}
        malformed.append(
            {
                "row_number": int(row[ROW_NUMBER]),
                "raw_row": {
                    c: str(row[c])[:KEPT_PREFIX_CHARS] if c in cut else str(row[c])
                    for c in data_columns
                },
                "reason": "; ".join(
                    f"{c}: a value of {len(row[c])} characters is longer than "
                    f"CSV_MAX_CELL_CHARS ({limits.max_cell_chars}); raw_row keeps its first "
                    f"{KEPT_PREFIX_CHARS}"
                    for c in data_columns
                    if c in cut
                ),
            }
        )
    return RawChunk(frame[~over].reset_index(drop=True), malformed)


def _longest_bytes(column: pd.Series) -> int:
    """The most bytes any value of a column of strings holds (UTF-8 in Arrow: one read of
    its offsets, where counting characters reads every value)."""
    lengths = pc.binary_length(pa.array(column, type=pa.large_string()))
    longest = pc.max(lengths).as_py()
    return int(longest or 0)


def _drop_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """Blank lines are not data rows: drop them (their line numbers are simply skipped)."""
    data_columns = [c for c in frame.columns if c != ROW_NUMBER]
    if data_columns and not (frame[data_columns[0]] == "").any():
        return frame  # a blank line leaves every column empty, the first one too
    data = frame.drop(columns=[ROW_NUMBER])
    blank = (data == "").all(axis=1)
    if not blank.any():
        return frame
    return frame[~blank].reset_index(drop=True)


class RecordTooLong(PermanentError):
    """A record over CSV_MAX_LINE_CHARS, refused while it was being read."""


class BoundedRecords(io.RawIOBase):
    """The file's bytes, as they are read, with every record bounded to `limit` bytes.

    A record ends at a line break outside quotes (an even count of `"` since the record
    began: an escaped `""` counts twice, so it keeps the parity). Each read returns at most
    `limit` bytes, so a record that lies wholly inside one read is within the limit; only
    the record that runs on from earlier reads is counted, and the moment it passes the limit
    the read raises RecordTooLong naming the line the record starts on.
    """

    def __init__(self, raw: io.BufferedReader, limit: int, name: str) -> None:
        super().__init__()
        self._raw = raw
        self._limit = max(limit, 1)
        self._name = name
        self._open_bytes = 0  # bytes of the record still open at the end of the last read
        self._open_odd = False  # an odd number of quotes in it: inside a quoted field
        self._open_line = 1  # the line that record starts on
        self._lines_before = 0  # line breaks before the current read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        block = self._raw.read(min(len(view), self._limit))
        if block:
            self._account(block)
        view[: len(block)] = block
        return len(block)

    def _account(self, block: bytes) -> None:
        ends = _record_ends(block, self._open_odd)
        if ends is None:  # the open record goes on through the whole read
            self._open_bytes += len(block)
            self._open_odd ^= block.count(b'"') % 2 == 1
            self._check(self._open_bytes)
        else:
            first, last = ends
            self._check(self._open_bytes + first + 1)
            self._open_bytes = len(block) - last - 1
            self._open_odd = block.count(b'"', last + 1) % 2 == 1
            self._open_line = self._lines_before + block.count(b"\n", 0, last + 1) + 1
        self._lines_before += block.count(b"\n")

    def _check(self, size: int) -> None:
        if size > self._limit:
            raise RecordTooLong(
                f"{self._name}: line {self._open_line}: a record longer than "
                f"CSV_MAX_LINE_CHARS ({self._limit}) bytes (often a quote that is never "
                "closed, or a huge cell); refused while reading"
            )


def _record_ends(block: bytes, odd_before: bool) -> tuple[int, int] | None:
    """The positions of the first and the last line break of `block` outside quotes (given
    whether the block starts inside a quoted field), or None when it has none. A break is
    outside quotes when the quotes before it, with `odd_before`, are even."""
    first = None
    position = quotes = 0
    for index in _breaks(block):
        quotes += block.count(b'"', position, index)
        position = index
        if (quotes % 2 == 1) == odd_before:
            first = index
            break
    if first is None:
        return None
    last, end = first, len(block)
    quotes = block.count(b'"')  # before `end`, walking back from the end of the block
    for index in _breaks(block, reverse=True, stop=first):
        quotes -= block.count(b'"', index, end)
        end = index
        if (quotes % 2 == 1) == odd_before:
            last = index
            break
    return first, last


def _breaks(block: bytes, *, reverse: bool = False, stop: int = 0) -> Iterator[int]:
    """The positions of the block's line breaks (LF or CR), in order or (`reverse`) from the
    end down to `stop`; each byte is looked at once, whichever the line ends."""
    if not reverse:
        found = {c: block.find(c) for c in (b"\n", b"\r")}
        while any(i >= 0 for i in found.values()):
            char, index = min(((c, i) for c, i in found.items() if i >= 0), key=lambda x: x[1])
            yield index
            found[char] = block.find(char, index + 1)
        return
    found = {c: block.rfind(c, stop) for c in (b"\n", b"\r")}
    while any(i >= stop for i in found.values()):
        char, index = max(found.items(), key=lambda x: x[1])
        yield index
        found[char] = block.rfind(char, stop, index) if index > stop else -1


def _open_bounded(path: Path, name: str, limits: CsvLimits) -> io.BufferedReader:
    """The file as a buffered binary stream whose records are bounded (BoundedRecords)."""
    raw = path.open("rb")
    try:
        return io.BufferedReader(BoundedRecords(raw, limits.max_record_bytes, name))
    except BaseException:
        raw.close()
        raise


def _open_text(path: Path, name: str, limits: CsvLimits) -> io.TextIOWrapper:
    """The same as text for Python's csv module (UTF-8, a BOM dropped, line ends kept)."""
    return io.TextIOWrapper(_open_bounded(path, name, limits), encoding="utf-8-sig", newline="")
