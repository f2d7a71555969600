"""Reading CSV files: header checks, chunking, line numbers, malformed records."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_assets.datasets.base import ROW_NUMBER
from etl_assets.datasets.sales import SALES
from etl_assets.errors import PermanentError
from etl_assets.pipeline.csv_source import CsvLimits, read_chunks, read_header

HEADER = "order_id,order_date,customer_id,sku,quantity,unit_price,currency,store_id"
ROW = "O{n},2024-01-05,C1,SKU-{n:04d},1,2.50,EUR,S1"


def write(tmp_path: Path, text: str, name: str = "in.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def rows(n: int) -> str:
    return "".join(ROW.format(n=i) + "\n" for i in range(n))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("\n", "the file is empty"),
        ("order_id,sku\nO1,A\n", "missing required column(s) order_date, customer_id"),
        (HEADER + ",sku\n", "column(s) sku appear twice"),
    ],
)
def test_unusable_headers_are_permanent_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PermanentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_header(path, SALES.required_columns, "orders.csv")


def test_errors_name_the_submitted_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n")
    with pytest.raises(PermanentError, match=r"^orders\.csv: missing"):
        read_header(path, SALES.required_columns, "orders.csv")


def test_not_utf8_is_a_permanent_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\nO1,2024-01-05,Zoë\n", encoding="utf-16")
    with pytest.raises(PermanentError, match="not UTF-8"):
        read_header(path, SALES.required_columns)


def test_header_is_normalized_and_a_bom_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff" + HEADER.upper().replace(",", " , ") + ",extra\n")
    assert read_header(path, SALES.required_columns)[:2] == ["order_id", "order_date"]


def test_chunks_carry_line_numbers_and_skip_blank_lines(tmp_path: Path) -> None:
    text = HEADER + "\n" + rows(3) + "\n" + rows(4)[len(rows(3)) :] + ",,,,,,,\n"
    path = write(tmp_path, text)
    columns = read_header(path, SALES.required_columns)
    chunks = list(read_chunks(path, columns, chunk_rows=2))
    numbers = [n for c in chunks for n in c.frame[ROW_NUMBER].tolist()]
    assert numbers == [2, 3, 4, 6]  # line 5 is blank, line 7 is all empty fields
    assert all(c.malformed == [] for c in chunks)
    assert chunks[0].frame["sku"].tolist() == ["SKU-0000", "SKU-0001"]


def test_malformed_records_are_set_aside_with_their_line(tmp_path: Path) -> None:
    lines = [ROW.format(n=i) for i in range(6)]
    lines[4] += ",surplus"
    path = write(tmp_path, HEADER + "\n" + "\n".join(lines) + "\n")
    columns = read_header(path, SALES.required_columns)
    chunks = list(read_chunks(path, columns, chunk_rows=2))
    numbers = [n for c in chunks for n in c.frame[ROW_NUMBER].tolist()]
    malformed = [m for c in chunks for m in c.malformed]
    assert numbers == [2, 3, 4, 5, 7]  # each good line once, even across the fallback
    assert [m["row_number"] for m in malformed] == [6]
    assert malformed[0]["reason"] == "expected 8 fields, found 9"
    assert malformed[0]["raw_row"]["line"].endswith(",surplus")
    assert sum(c.rows_read for c in chunks) == 6


def test_short_records_keep_their_place(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\nO1,2024-01-05\n" + rows(1))
    columns = read_header(path, SALES.required_columns)
    [chunk] = list(read_chunks(path, columns, chunk_rows=10))
    assert chunk.frame[ROW_NUMBER].tolist() == [2, 3]
    assert chunk.frame["customer_id"].tolist()[0] == ""  # reported as missing by validation


def test_a_first_record_with_surplus_fields_is_set_aside_not_shifted(tmp_path: Path) -> None:
    # pandas would read the surplus as an index and shift every column (found by the fuzz suite)
    path = write(tmp_path, HEADER + "\n" + ROW.format(n=1) + ",surplus\n" + rows(2))
    columns = read_header(path, SALES.required_columns)
    chunks = list(read_chunks(path, columns, chunk_rows=10))
    assert [m["row_number"] for c in chunks for m in c.malformed] == [2]
    assert [n for c in chunks for n in c.frame[ROW_NUMBER].tolist()] == [3, 4]
    assert chunks[-1].frame["order_id"].tolist()[-2:] == ["O0", "O1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "\n" + rows(1) + 'O9,"2024\n', r"line 3: a quoted field is not closed"),
        (HEADER + "\nO1,\x00\n", r"line 2 holds a NUL byte"),
        (HEADER + "," + ",".join(f"x{i}" for i in range(5)) + "\n", r"line 1 .*CSV_MAX_COLUMNS"),
    ],
)
def test_unreadable_content_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    limits = CsvLimits(max_columns=10)
    with pytest.raises(PermanentError, match=rf"^orders\.csv: {message}"):
        columns = read_header(path, SALES.required_columns, "orders.csv", limits)
        list(read_chunks(path, columns, 10, "orders.csv", limits))
