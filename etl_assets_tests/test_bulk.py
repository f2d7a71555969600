"""Set-based upserts by natural key, on SQLite (executemany) and PostgreSQL (COPY)."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from etl_assets.datasets.sales import SALES, sales_fact
from etl_assets.warehouse.bulk import UpsertCounts, upsert_rows

FACT_COLUMNS = [column.name for column in sales_fact.columns]


def lines(job_id: str, *keys: tuple[str, str, int], quantity: int = 1) -> pd.DataFrame:
    """Fact rows for (order_id, sku, source_row) keys."""
    rows = [
        {
            "order_id": order,
            "sku": sku,
            "order_date": "2024-01-05",
            "customer_id": "C1",
            "store_id": "S1",
            "quantity": quantity,
            "unit_price": 2.5,
            "currency": "USD",
            "amount": 2.5 * quantity,
            "fx_rate": 0.9,
            "fx_date": "2024-01-05",
            "amount_reporting": 2.25 * quantity,
            "reporting_currency": "EUR",
            "product_name": "Product",
            "category": "home",
            "job_id": job_id,
            "source_row": row,
        }
        for order, sku, row in keys
    ]
    return pd.DataFrame(rows, columns=FACT_COLUMNS)


def load(engine: sa.Engine, frame: pd.DataFrame) -> UpsertCounts:
    with engine.begin() as conn:
        return upsert_rows(conn, sales_fact, SALES.natural_key, frame, dimensions=SALES.dimensions)


def facts(engine: sa.Engine) -> list[tuple[str, str, str, int, int]]:
    stmt = sa.select(
        sales_fact.c.order_id,
        sales_fact.c.sku,
        sales_fact.c.job_id,
        sales_fact.c.source_row,
        sales_fact.c.quantity,
    ).order_by(sales_fact.c.order_id, sales_fact.c.sku)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(stmt)]  # type: ignore[misc]


def test_new_rows_are_inserted_with_lineage(engine: sa.Engine) -> None:
    counts = load(engine, lines("J1", ("O1", "A", 2), ("O1", "B", 3)))
    assert counts == UpsertCounts(loaded=2, duplicate=0)
    assert facts(engine) == [("O1", "A", "J1", 2, 1), ("O1", "B", "J1", 3, 1)]


def test_reloading_the_same_rows_is_idempotent(engine: sa.Engine) -> None:
    batch = lines("J1", ("O1", "A", 2), ("O1", "B", 3))
    load(engine, batch)
    assert load(engine, batch) == UpsertCounts(loaded=2, duplicate=0)
    assert len(facts(engine)) == 2


def test_a_line_repeated_in_one_file_keeps_the_first(engine: sa.Engine) -> None:
    # within one batch
    counts = load(engine, lines("J1", ("O1", "A", 2), ("O1", "A", 3)))
    assert counts == UpsertCounts(loaded=1, duplicate=1)
    # and in a later chunk of the same job, with other values
    counts = load(engine, lines("J1", ("O1", "A", 9), quantity=5))
    assert counts == UpsertCounts(loaded=0, duplicate=1)
    assert facts(engine) == [("O1", "A", "J1", 2, 1)]


def test_a_later_job_wins_and_counts_the_duplicate(engine: sa.Engine) -> None:
    load(engine, lines("J1", ("O1", "A", 2), ("O1", "B", 3)))
    counts = load(engine, lines("J2", ("O1", "A", 2), ("O2", "C", 3), quantity=4))
    assert counts == UpsertCounts(loaded=1, duplicate=1)
    assert facts(engine) == [
        ("O1", "A", "J2", 2, 4),
        ("O1", "B", "J1", 3, 1),
        ("O2", "C", "J2", 3, 4),
    ]


def row_versions(engine: sa.Engine) -> list[str]:
    """Each fact row's physical version: PostgreSQL's ctid moves when a row is rewritten,
    SQLite's rowid stays; on SQLite the rows' lineage is what tells."""
    version = "ctid::text" if engine.dialect.name == "postgresql" else "rowid"
    with engine.connect() as conn:
        query = f"SELECT {version} FROM sales_fact ORDER BY order_id, sku"
        return [str(value) for value in conn.exec_driver_sql(query).scalars()]


def test_a_later_job_repeating_rows_unchanged_rewrites_none(engine: sa.Engine) -> None:
    load(engine, lines("J1", ("O1", "A", 2), ("O1", "B", 3)))
    before = row_versions(engine)
    # A re-sent export: the same rows, other lines, a later job; one row changed.
    counts = load(engine, lines("J2", ("O1", "A", 7), ("O2", "C", 8)))
    assert counts == UpsertCounts(loaded=1, duplicate=1)
    again = load(engine, lines("J3", ("O1", "A", 4), ("O1", "B", 5), ("O2", "C", 6)))
    assert again == UpsertCounts(loaded=0, duplicate=3)
    # Unchanged rows keep the lineage of the job that first loaded their content.
    assert facts(engine) == [
        ("O1", "A", "J1", 2, 1),
        ("O1", "B", "J1", 3, 1),
        ("O2", "C", "J2", 8, 1),
    ]
    assert row_versions(engine)[:2] == before
    # A changed value is written, and the row's lineage moves to the job that changed it.
    load(engine, lines("J4", ("O1", "B", 9), quantity=3))
    assert facts(engine)[1] == ("O1", "B", "J4", 9, 3)


def test_dimensions_follow_the_loaded_rows(engine: sa.Engine) -> None:
    first = lines("J1", ("O1", "A", 2))
    later = lines("J2", ("O2", "A", 2)).assign(order_date="2024-02-01", product_name="Renamed")
    load(engine, first)
    load(engine, later)
    with engine.connect() as conn:
        product = conn.execute(sa.text("SELECT product_name, last_job_id FROM dim_product")).one()
        customer = conn.execute(
            sa.text(
                "SELECT first_order_date, last_order_date, first_job_id, last_job_id "
                "FROM dim_customer"
            )
        ).one()
    assert tuple(product) == ("Renamed", "J2")
    assert [str(value) for value in customer] == ["2024-01-05", "2024-02-01", "J1", "J2"]


def test_a_failed_batch_leaves_nothing(engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        upsert_rows(conn, sales_fact, SALES.natural_key, lines("J1", ("O1", "A", 2)))
        raise RuntimeError("the checkpoint write failed")
    assert facts(engine) == []


def test_new_keys_go_straight_in_and_reloads_take_the_careful_path(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_assets.warehouse import bulk

    staged: list[str] = []  # facts staged; dimensions are always staged, not counted here
    real_prepare = bulk._prepare_stage

    def prepare(conn: sa.Connection, table: sa.Table, stage: str) -> None:
        if table is sales_fact:
            staged.append(stage)
        real_prepare(conn, table, stage)

    monkeypatch.setattr(bulk, "_prepare_stage", prepare)
    load(engine, lines("J1", ("O1", "A", 2), ("O1", "B", 3)))
    assert staged == []  # a first load never stages its facts
    load(engine, lines("J1", ("O1", "A", 2)))  # a reload: its first key is there
    assert len(staged) == 1
    # A batch whose first key is new but a later one is not: the savepoint catches it.
    counts = load(engine, lines("J2", ("O9", "Z", 2), ("O1", "B", 3)))
    assert counts == UpsertCounts(loaded=1, duplicate=1)
    assert len(staged) == 2
    assert ("O9", "Z", "J2", 2, 1) in facts(engine)


def test_an_earlier_job_loading_late_leaves_the_later_jobs_row(engine: sa.Engine) -> None:
    # J2 loaded the line first; J1 (created earlier: a retry, say) loads it afterwards.
    load(engine, lines("J2", ("O1", "A", 5), quantity=4))
    counts = load(engine, lines("J1", ("O1", "A", 2), ("O2", "B", 3)))
    assert counts == UpsertCounts(loaded=1, duplicate=1)
    assert facts(engine) == [("O1", "A", "J2", 5, 4), ("O2", "B", "J1", 3, 1)]


def test_copy_text_is_the_same_however_it_is_read() -> None:
    # COPY reads CsvStream in pieces while it formats the frame slice by slice: the bytes
    # must be those of formatting the whole frame at once, across slice boundaries too.
    from etl_assets.warehouse.bulk import SLICE_ROWS, CsvStream, csv_bytes, python_rows

    rows = 2 * SLICE_ROWS + 7
    frame = lines("J1", *((f"O{n}", "A", n) for n in range(rows)))
    frame.loc[5, "category"] = None  # a null becomes an empty field
    whole = csv_bytes(frame)
    stream = CsvStream(frame)
    pieces = []
    while piece := stream.read(4093):  # a size that never lines up with a row or a slice
        pieces.append(piece)
    assert b"".join(pieces) == whole
    assert whole.count(b"\n") == rows
    # The SQLite path converts in slices too: every row, in order, as Python values.
    converted = list(python_rows(frame))
    assert len(converted) == rows and converted[-1][0] == f"O{rows - 1}"
    assert type(converted[0][5]) is int and type(converted[0][6]) is float
