"""`etl api`'s inbox watcher takes a settled file as a job within a second, and two
publishers on one inbox (it and the inbox sensor) make one job of each file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.intake.inbox_watcher import InboxWatcher
from etl_assets.intake.publisher import publish_inbox
from etl_assets.ledger import Ledger

DEADLINE = 10.0


def test_a_settled_file_becomes_a_job_without_waiting_for_a_tick(
    ledger: Ledger, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    watcher = InboxWatcher(ledger, tmp_path / "archive", inbox, settle_seconds=0.0).start()
    try:
        path = write_sales_csv(inbox / "sales" / "a.csv", sales_frame(5))
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not ledger.list_jobs(limit=5):
            time.sleep(0.05)
    finally:
        watcher.stop()
    [job] = ledger.list_jobs(limit=5)
    assert job.source_name == "a.csv" and job.dataset == "sales"
    assert not path.exists()  # safe in the archive now


def test_two_publishers_on_one_inbox_make_one_job_of_each_file(
    ledger: Ledger, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    for n in range(12):
        write_sales_csv(inbox / "sales" / f"f{n}.csv", sales_frame(3, seed=n))
    failures: list[BaseException] = []

    def publish() -> None:
        try:
            publish_inbox(ledger, tmp_path / "archive", inbox, settle_seconds=0.0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    publishers = [threading.Thread(target=publish) for _ in range(3)]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join(timeout=60)
    assert failures == []
    jobs = ledger.list_jobs(limit=50)
    assert sorted(j.source_name for j in jobs) == sorted(f"f{n}.csv" for n in range(12))
    assert list((inbox / "sales").iterdir()) == []
