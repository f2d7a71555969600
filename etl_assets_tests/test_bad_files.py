"""Files that end wrong, through the real sensors and asset job: each unreadable or malformed
file fails at once (one attempt, permanent) with a message naming the file, the line and the
cause; a cell over the configured limit only quarantines its row, with a bounded prefix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pytest
from conftest import Platform, platform_for

from etl_assets.config import Settings
from etl_assets.ledger import ErrorType, JobStatus

HEADER = "order_id,order_date,customer_id,sku,quantity,unit_price,currency,store_id"
ROW = "O{n},2024-01-05,C1,SKU-{n:04d},1,2.50,EUR,S1"  # SKU-0001 .. exist


def rows(n: int) -> str:
    return "".join(ROW.format(n=i) + "\n" for i in range(1, n + 1))


def limited(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path, **limits: int
) -> Platform:
    """The platform with small CSV limits in its settings: the run takes them from its
    pipeline resource, never from the environment."""
    return platform_for(dataclasses.replace(settings, **limits), instance, tmp_path)


@pytest.mark.parametrize(
    ("content", "line", "cause"),
    [
        pytest.param(HEADER + "\n", "line 1", "only its header", id="header-only"),
        pytest.param(
            HEADER.replace("sku", "s\x00ku") + "\n" + rows(2), "line 1", "NUL", id="nul-header"
        ),
        pytest.param(
            HEADER + "\n" + rows(2) + "O9,2024-01-05,C\x001,SKU-0001,1,2.5,EUR,S1\n" + rows(1),
            "line 4",
            "NUL",
            id="nul-row",
        ),
        pytest.param(
            HEADER + "\n" + rows(2) + 'O9,2024-01-05,"C1,SKU-0001,1,2.5,EUR,S1\n' + rows(3),
            "line 4",  # where the record with the open quote starts
            "not closed",
            id="unterminated-quote",
        ),
        pytest.param(
            HEADER + "\n" + rows(1) + 'O9,2024-01-05,C1,"SKU' + "x" * 3000 + '",1,2,EUR,S1\n',
            "line 3",
            "CSV_MAX_FIELD_CHARS",
            id="field-over-the-reader-limit",
        ),
        pytest.param(
            HEADER + "\n" + rows(2) + 'O9,2024-01-05,C1,"SKU' + "x" * 9000 + '",1,2,EUR,S1\n',
            "line 4",
            "CSV_MAX_LINE_CHARS",
            id="record-over-the-line-limit",
        ),
        pytest.param(
            HEADER + "," + ",".join(f"extra{i}" for i in range(40)) + "\n" + rows(1),
            "line 1",
            "CSV_MAX_COLUMNS",
            id="header-too-wide",
        ),
        pytest.param(
            HEADER + "\n" + rows(1) + "O9,2024-01-05,C\xe91\n", "line", "not UTF-8", id="latin-1"
        ),
    ],
)
def test_a_file_that_ends_wrong_fails_at_once_naming_file_line_and_cause(
    settings: Settings,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    content: str,
    line: str,
    cause: str,
) -> None:
    platform = limited(
        settings, instance, tmp_path,
        csv_max_columns=20, csv_max_cell_chars=100, csv_max_field_chars=1000,
        csv_max_line_chars=5000,
    )  # fmt: skip
    monkeypatch.setenv("CSV_MAX_LINE_CHARS", "999999999")  # not read by the run
    path = tmp_path / "in" / "orders-2024.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = "latin-1" if "\xe9" in content else "utf-8"
    path.write_bytes(content.encode(encoding))
    job = platform.submit_file(path)

    platform.run_all()

    failed = platform.ledger.get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error_type is ErrorType.PERMANENT
    assert len(platform.ledger.attempts(job.job_id)) == 1
    message = failed.error_message or ""
    assert "orders-2024.csv" in message and line in message and cause in message
    assert "\x00" not in message + (failed.error_traceback or "")


def test_a_cell_over_the_limit_quarantines_its_row_with_a_bounded_prefix(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    platform = limited(
        settings, instance, tmp_path, csv_max_cell_chars=300, csv_max_field_chars=100_000
    )
    huge = "x" * 50_000
    path = tmp_path / "in" / "long-cell.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + rows(3) + f"O9,2024-01-05,C1,SKU-0001,1,2.5,EUR,{huge}\n")
    job = platform.submit_file(path)

    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert done.status is JobStatus.COMPLETED
    assert (done.rows_total, done.rows_loaded, done.rows_quarantined) == (4, 3, 1)
    [row] = platform.ledger.quarantined(job.job_id)
    assert row["row_number"] == 5
    assert len(row["raw_row"]["store_id"]) == 200 and row["raw_row"]["order_id"] == "O9"
    assert "50000 characters" in row["reason"] and "CSV_MAX_CELL_CHARS (300)" in row["reason"]
    assert "keeps its first 200" in row["reason"]
