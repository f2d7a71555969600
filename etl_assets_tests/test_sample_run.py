"""The quick start's first command: the sample run passes on a fresh temporary setup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_sample_run_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "sandbox" / "sample_run.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "OK: every job ended as expected" in result.stdout
    assert "OK: customer_rfm, daily_sales, stock_cover materialized; all " in result.stdout
    assert "warehouse checks are green." in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    statuses = {
        (row[1], row[2]): row[3] for row in rows if len(row) > 3 and row[2].endswith(".csv")
    }
    assert statuses["sales", "north_q1.csv"] == "completed"
    assert statuses["sales", "no_prices.csv"] == "failed"
    assert statuses["customers", "crm_export.csv"] == "completed"
    assert statuses["inventory", "stock_q1_end.csv"] == "completed"
