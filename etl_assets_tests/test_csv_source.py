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


def test_an_over_long_record_is_refused_while_it_is_read_not_after(tmp_path: Path) -> None:
    """An 8 MB cell (or an unclosed quote swallowing the rest of the file) is refused once
    CSV_MAX_LINE_CHARS bytes of it are read: the reader never holds it whole."""
    import tracemalloc

    limits = CsvLimits(max_cell_chars=100, max_field_chars=1000, max_line_chars=10_000)
    cell = "x" * 8_000_000
    for name, text in (
        ("cell.csv", HEADER + "\n" + rows(3) + f'O9,2024-01-05,C1,"{cell}",1,2,EUR,S1\n'),
        ("quote.csv", HEADER + "\n" + rows(3) + 'O9,2024-01-05,"C1\n' + rows(200_000)),
        ("header.csv", HEADER + ",x" * 10_000 + "\n" + rows(1)),
    ):
        path = write(tmp_path, text, name)
        tracemalloc.start()
        try:
            with pytest.raises(PermanentError, match=r"CSV_MAX_LINE_CHARS \(10000\)") as refused:
                columns = read_header(path, SALES.required_columns, name, limits)
                list(read_chunks(path, columns, 1000, name, limits))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # The NUL scan reads 1 MB blocks; a reader holding the cell would need 8 MB.
        assert peak < 4_000_000, (name, peak)
        expected_line = "line 1" if name == "header.csv" else "line 5"
        assert str(refused.value).startswith(f"{name}: {expected_line}: a record longer")


def test_records_end_at_line_breaks_outside_quotes_whatever_the_read_size(tmp_path: Path) -> None:
    """Quoted line breaks, escaped quotes and CRLF do not end a record; with the record limit
    just above the longest record, every read size reads the file unchanged."""
    record = (
        'O{n},2024-01-05,"C ""{n}""\r\nof the second line of a name",SKU-{n:04d},1,2.50,EUR,S1\r\n'
    )
    text = HEADER + "\r\n" + "".join(record.format(n=i) for i in range(200))
    path = write(tmp_path, text)
    # Records 100..199, up to the line break that ends them (CR: the LF starts the next);
    # the header is shorter.
    longest = len(record.format(n=199)) - 1
    assert longest > len(HEADER) + 2
    for limit in (longest, longest + 7, 4096):
        limits = CsvLimits(max_field_chars=60, max_line_chars=limit)
        columns = read_header(path, SALES.required_columns, "in.csv", limits)
        [chunk] = list(read_chunks(path, columns, 1000, "in.csv", limits))
        assert chunk.frame["customer_id"].iat[199] == 'C "199"\r\nof the second line of a name'
        assert len(chunk.frame) == 200
    # Record 100 is the first as long as the longest: it starts on physical line 202.
    shorter = CsvLimits(max_field_chars=60, max_line_chars=longest - 1)
    with pytest.raises(PermanentError, match=r"in\.csv: line 202: a record longer"):
        list(read_chunks(path, columns, 1000, "in.csv", shorter))
