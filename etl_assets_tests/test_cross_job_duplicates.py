"""The same order line in two files: loaded once and counted as the later job's duplicate;
a corrected line takes the later job's values and lineage, a repeated one is left alone."""

from __future__ import annotations

import sqlalchemy as sa
from conftest import Platform

from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.intake.publisher import publish_file, source_archive
from etl_assets.ledger import JobStatus


def test_a_line_in_two_files_is_loaded_once_and_the_later_job_wins(platform: Platform) -> None:
    first = sales_frame(30, seed=1, order_prefix="A")
    second = sales_frame(30, seed=2, order_prefix="B")
    second.iloc[:6] = first.iloc[:6].to_numpy()  # six lines of the first file again...
    corrected = (first["quantity"].iloc[:3].astype(int) + 100).astype(str).to_numpy()
    second.iloc[:3, second.columns.get_loc("quantity")] = corrected  # ...three corrected
    archive = source_archive(platform.settings.staging_dir)
    paths = [
        write_sales_csv(platform.tmp_path / name, frame)
        for name, frame in (("first.csv", first), ("second.csv", second))
    ]
    job_a = publish_file(platform.ledger, archive, paths[0], dataset="sales").job
    platform.run_all()
    job_b = publish_file(platform.ledger, archive, paths[1], dataset="sales").job
    platform.run_all()

    done_a, done_b = platform.ledger.get(job_a.job_id), platform.ledger.get(job_b.job_id)
    assert done_a.status is done_b.status is JobStatus.COMPLETED
    assert (done_a.rows_total, done_a.rows_loaded, done_a.rows_duplicate) == (30, 30, 0)
    assert (done_b.rows_total, done_b.rows_loaded, done_b.rows_duplicate) == (30, 24, 6)
    for job in (done_a, done_b):  # rows in = loaded + quarantined + duplicate, per job
        assert job.rows_total == job.rows_loaded + job.rows_quarantined + job.rows_duplicate
    assert platform.facts() == 54  # each line once
    keys = [(row.order_id, row.sku) for row in first.iloc[:6].itertuples()]
    with platform.ledger.engine.connect() as conn:
        held = conn.execute(
            sa.text(
                "SELECT order_id, sku, job_id, quantity FROM sales_fact WHERE order_id LIKE 'A-%'"
            )
        ).all()
    repeated = {(o, s): (j, q) for o, s, j, q in held if (o, s) in keys}
    # The corrected lines: B's values and lineage. The unchanged ones: not rewritten, A's.
    unchanged = first["quantity"].iloc[3:6]
    assert repeated == {
        **{key: (job_b.job_id, int(q)) for key, q in zip(keys[:3], corrected, strict=True)},
        **{key: (job_a.job_id, int(q)) for key, q in zip(keys[3:], unchanged, strict=True)},
    }
    assert platform.facts(job_a.job_id) == 27
