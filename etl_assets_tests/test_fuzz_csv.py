"""Fuzzing the way a file comes in: generated files (random bytes, quotes, NULs, wide headers,
empty, header-only, BOMs, CRLF, blank lines, over-long cells) through the CSV reader and
validation, and a few through the real pipeline.

For every generated file: either it is refused with a PermanentError that names it, or every
record is accounted for (rows read = valid + quarantined, each line once). Through the
pipeline: the job ends in one attempt, failed (permanent, naming the file) or completed with
rows in = loaded + quarantined + duplicate. Bounded: few examples, no deadline per example.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from pathlib import Path

import pytest
from conftest import Platform, platform_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.datasets.base import ROW_NUMBER
from etl_assets.datasets.sales import SALES
from etl_assets.errors import PermanentError
from etl_assets.ledger import ErrorType, JobStatus
from etl_assets.pipeline.csv_source import CsvLimits, read_chunks, read_header
from etl_assets.pipeline.validation import validate_chunk

NAME = "fuzzed upload.csv"
LIMITS = CsvLimits(max_columns=30, max_cell_chars=50, max_field_chars=400)
COLUMNS = ["order_id", "order_date", "customer_id", "sku", "quantity", "unit_price"]
COLUMNS += ["currency", "store_id"]
GOOD = ["O1", "2024-02-27", "C00256", "SKU-0341", "3", "4.29", "CHF", "STORE-07"]

# Fields that are fine, wrong for validation, or hostile to the reader.
field = st.one_of(
    st.sampled_from(GOOD),
    st.sampled_from(["", " ", '"', '""', '"a,b"', '"x""y"', "\x00", "-1", "1e309", "Zoë"]),
    st.text(alphabet=',"\r\n\x00ab1 é', max_size=8),
    st.builds(lambda n: "x" * n, st.integers(40, 500)),  # around the cell and field limits
)
record = st.one_of(
    st.just(",".join(GOOD)),
    st.lists(field, min_size=0, max_size=10).map(",".join),
    st.lists(st.sampled_from(GOOD), min_size=8, max_size=8).map(",".join),
)
header = st.one_of(
    st.just(",".join(COLUMNS)),
    st.just(",".join(c.upper() for c in COLUMNS) + ",extra"),
    st.just(",".join([*COLUMNS, "sku"])),  # a duplicate
    st.just(",".join([*COLUMNS, *(f"c{i}" for i in range(40))])),  # wider than the limit
    st.lists(field, max_size=5).map(",".join),
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A file: usually a header and records, with a BOM, CRLF or blank lines; sometimes
    random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [draw(header), *draw(st.lists(st.one_of(record, st.just("")), max_size=12))]
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text.encode(draw(st.sampled_from(["utf-8"] * 5 + ["latin-1", "utf-16"])), "replace")


def read_and_validate(path: Path, chunk_rows: int) -> tuple[int, int, int]:
    """(rows read, valid, quarantined) of a file, as the validate step counts them."""
    columns = read_header(path, SALES.required_columns, NAME, LIMITS)
    read = valid = quarantined = 0
    lines: list[int] = []
    for chunk in read_chunks(path, columns, chunk_rows, NAME, LIMITS):
        checked = validate_chunk(chunk.frame, SALES.columns)
        assert len(checked.valid) + len(checked.rejected) == len(chunk.frame)
        lines += chunk.frame[ROW_NUMBER].tolist() + [m["row_number"] for m in chunk.malformed]
        for rejected in chunk.malformed + checked.rejected:
            assert rejected["reason"]
            assert all(len(v) <= LIMITS.max_cell_chars * 4 for v in rejected["raw_row"].values())
        read += chunk.rows_read
        valid += len(checked.valid)
        quarantined += len(chunk.malformed) + len(checked.rejected)
    assert len(lines) == len(set(lines)) and all(n >= 2 for n in lines)  # each line once
    return read, valid, quarantined


@settings(max_examples=150, deadline=None)
@given(content=csv_files(), chunk_rows=st.integers(1, 4))
def test_every_file_is_refused_by_name_or_every_row_is_accounted_for(
    content: bytes, chunk_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_bytes(content)
        refusal = None
        try:
            read, valid, quarantined = read_and_validate(path, chunk_rows)
        except PermanentError as exc:
            refusal = str(exc)
        if refusal is not None:
            assert refusal.startswith(f"{NAME}: ") and "\x00" not in refusal
            return
        assert read == valid + quarantined


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.lists(field, min_size=8, max_size=8).map(",".join), max_size=8),
    chunk_rows=st.integers(1, 3),
)
def test_a_file_reads_the_same_whatever_the_chunk_size(records: list[str], chunk_rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.csv"
        path.write_text("\n".join([",".join(COLUMNS), *records]) + "\n")
        outcomes: list[tuple[int, int, int] | str] = []
        for size in (chunk_rows, 1000):
            try:
                outcomes.append(read_and_validate(path, size))
            except PermanentError:
                outcomes.append("refused")  # the line it names may be counted either way
        assert outcomes[0] == outcomes[1]


_names = itertools.count()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=csv_files())
def test_a_generated_file_through_the_pipeline_ends_right(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    # Small limits, in the run's settings (its pipeline resource); the environment's would
    # serve the publisher only.
    limits = dict(csv_max_columns=30, csv_max_cell_chars=50, csv_max_field_chars=400)
    platform = platform_for(
        dataclasses.replace(platform.settings, **limits),
        platform.daemon.instance,
        platform.tmp_path,
    )
    for name, value in limits.items():
        monkeypatch.setenv(name.upper(), str(value))
    path = platform.tmp_path / "fuzz" / f"upload {next(_names)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content + f"\n#{path.name}".encode())  # new content every example
    job = platform.submit_file(path)

    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert len(platform.ledger.attempts(job.job_id)) == 1
    if done.status is JobStatus.FAILED:
        assert done.error_type is ErrorType.PERMANENT, done.error_message
        assert path.name in (done.error_message or "")
    else:
        assert done.status is JobStatus.COMPLETED
        assert done.rows_total == done.rows_loaded + done.rows_quarantined + done.rows_duplicate
