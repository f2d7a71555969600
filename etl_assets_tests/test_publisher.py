"""The publisher: files become pending jobs once, from `etl submit` or the inbox folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from etl_assets.errors import PermanentError
from etl_assets.intake.publisher import publish_file, publish_inbox, settled_inbox_files
from etl_assets.ledger import JobStatus, Ledger

CSV = "order_id,order_date,customer_id,sku,quantity,unit_price,currency,store_id\n"


def test_a_file_becomes_one_pending_job_and_is_archived(ledger: Ledger, tmp_path: Path) -> None:
    source = tmp_path / "north.csv"
    source.write_text(CSV + "O1,2024-01-05,C1,SKU-0001,1,2,EUR,S1\n")
    published = publish_file(ledger, tmp_path / "archive", source, dataset="sales", priority=3)
    job = published.job
    assert published.created
    assert (job.status, job.dataset, job.source_name, job.priority) == (
        JobStatus.PENDING,
        "sales",
        "north.csv",
        3,
    )
    archived = Path(job.source_uri)
    assert archived.read_bytes() == source.read_bytes()
    assert archived.name == f"{job.content_sha256}.csv"
    assert job.size_bytes == source.stat().st_size


def test_the_same_content_again_is_a_duplicate(ledger: Ledger, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(CSV + "O1,2024-01-05,C1,SKU-0001,1,2,EUR,S1\n")
    second.write_bytes(first.read_bytes())
    original = publish_file(ledger, tmp_path / "archive", first, dataset="sales")
    again = publish_file(ledger, tmp_path / "archive", second, dataset="sales", title="again")
    assert not again.created
    assert again.job.job_id == original.job.job_id
    assert len(ledger.list_jobs()) == 1
    assert len(list((tmp_path / "archive" / "sales").iterdir())) == 1


def test_unknown_dataset_and_missing_file(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(CSV)
    with pytest.raises(
        PermanentError, match=r"unknown dataset 'invoices'; known datasets: .*sales"
    ):
        publish_file(ledger, tmp_path, path, dataset="invoices")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        publish_file(ledger, tmp_path, tmp_path / "nope.csv", dataset="sales")
    assert ledger.list_jobs() == []


def test_inbox_waits_for_files_to_settle_and_ignores_partial_ones(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sales").mkdir(parents=True)
    (inbox / "unknown_dataset").mkdir()
    old = time.time() - 60
    for name in ("ready.csv", "upload.csv.part", ".hidden.csv", "notes.txt"):
        (inbox / "sales" / name).write_text(CSV)
        os.utime(inbox / "sales" / name, (old, old))
    (inbox / "unknown_dataset" / "x.csv").write_text(CSV)
    (inbox / "sales" / "still_writing.csv").write_text(CSV)
    found = list(settled_inbox_files(inbox, settle_seconds=5))
    assert found == [("sales", inbox / "sales" / "ready.csv")]


def test_publishing_the_inbox_removes_what_it_registered(ledger: Ledger, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox" / "sales"
    inbox.mkdir(parents=True)
    (inbox / "a.csv").write_text(CSV + "O1,2024-01-05,C1,SKU-0001,1,2,EUR,S1\n")
    (inbox / "a_copy.csv").write_text(CSV + "O1,2024-01-05,C1,SKU-0001,1,2,EUR,S1\n")
    published = publish_inbox(ledger, tmp_path / "archive", tmp_path / "inbox", 0)
    assert [p.created for p in published] == [True, False]
    assert list(inbox.iterdir()) == []
    assert Path(published[0].job.source_uri).exists()
