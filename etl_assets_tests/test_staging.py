"""Staging holds data, never code: chunks and lookup tables are Arrow IPC, manifests JSON;
column types round-trip, and a pickle put in staging is refused without being loaded."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from etl_assets.pipeline.source import SourceRows
from etl_assets.resources.staging import (
    ChunkWriter,
    JobStagingIOManager,
    StagedChunks,
    StagingFormatError,
)

JOB = "01JD3S6S8F6Q2W5N1B7C9XKZ4M"
KEY = dg.AssetKey(["sales", "source_rows"])


def typed_frame() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "order_id": pd.Series(["A-1", None, "A-3"], dtype="str"),
            "quantity": pd.Series([1, 2, 3], dtype="int64"),
            "unit_price": pd.Series([1.5, float("nan"), 3.25], dtype="float64"),
            "order_date": pd.to_datetime(["2026-01-02", "2026-01-03", None]),
        },
        index=[4, 7, 9],  # what validation leaves: the rows that passed
    )
    return frame


class Detonator:
    """Unpickling this runs code: the file it writes says the pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


def test_chunks_round_trip_with_their_column_types(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path / "source_rows")
    frames = [typed_frame(), typed_frame().iloc[:1]]
    for frame in frames:
        writer.write(frame)
    staged = writer.finish()
    assert (staged.chunk_count, staged.row_count) == (2, 4)
    for written, read in zip(frames, staged, strict=True):
        pd.testing.assert_frame_equal(read, written)
        assert str(read["order_id"].dtype) == "str"
    assert sorted(p.suffix for p in (tmp_path / "source_rows").iterdir()) == [".arrow", ".arrow"]


def test_a_pickled_chunk_is_refused_never_loaded(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path / "source_rows")
    writer.write(typed_frame())
    staged = writer.finish()
    marker = tmp_path / "marker"
    [chunk] = (tmp_path / "source_rows").iterdir()
    chunk.write_bytes(pickle.dumps(Detonator(marker)))  # someone with write access to staging
    with pytest.raises(StagingFormatError, match="not an Arrow IPC file"):
        staged.read(0)
    assert not marker.exists()


def manager_contexts(tmp_path: Path) -> tuple[JobStagingIOManager, Any, Any]:
    manager = JobStagingIOManager(base_dir=str(tmp_path))
    output = dg.build_output_context(asset_key=KEY, partition_key=JOB)
    upstream = dg.build_output_context(asset_key=KEY, partition_key=JOB)
    loading = dg.build_input_context(asset_key=KEY, partition_key=JOB, upstream_output=upstream)
    return manager, output, loading


def test_the_io_manager_stores_frames_as_arrow_and_manifests_as_json(tmp_path: Path) -> None:
    manager, output, loading = manager_contexts(tmp_path)
    manifest = SourceRows(
        StagedChunks(str(tmp_path / "chunks"), 3, 120),
        rows_total=125,
        rows_quarantined=5,
        lookup_keys={
            "fx_rates": frozenset(
                {(pd.Timestamp("2026-01-02"), "USD"), (pd.Timestamp("2026-01-03"), "EUR")}
            ),
            "catalog": frozenset({("SKU-1",), ("SKU-2",)}),
        },
    )
    manager.handle_output(output, manifest)
    assert [p.name for p in (tmp_path / "jobs" / JOB).iterdir()] == ["sales__source_rows.json"]
    assert manager.load_input(loading) == manifest

    frame = typed_frame()
    manager.handle_output(output, frame)  # the same key now holds a lookup table
    assert [p.name for p in (tmp_path / "jobs" / JOB).iterdir()] == ["sales__source_rows.arrow"]
    pd.testing.assert_frame_equal(manager.load_input(loading), frame)


def test_the_io_manager_refuses_what_it_cannot_store_safely(tmp_path: Path) -> None:
    manager, output, _loading = manager_contexts(tmp_path)
    with pytest.raises(TypeError, match="not dict"):
        manager.handle_output(output, {"anything": "else"})


@pytest.mark.parametrize("suffix", [".arrow", ".json"])
def test_a_pickle_in_place_of_a_staged_value_is_refused(tmp_path: Path, suffix: str) -> None:
    manager, _output, loading = manager_contexts(tmp_path)
    marker = tmp_path / "marker"
    path = tmp_path / "jobs" / JOB / f"sales__source_rows{suffix}"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(Detonator(marker)))
    with pytest.raises(StagingFormatError, match="it is not loaded"):
        manager.load_input(loading)
    assert not marker.exists()


def test_a_pickle_left_by_an_older_version_is_not_loaded(tmp_path: Path) -> None:
    manager, _output, loading = manager_contexts(tmp_path)
    marker = tmp_path / "marker"
    old = tmp_path / "jobs" / JOB / "sales__source_rows.pkl"
    old.parent.mkdir(parents=True)
    old.write_bytes(pickle.dumps(Detonator(marker)))
    with pytest.raises(StagingFormatError, match="nothing staged"):
        manager.load_input(loading)
    assert not marker.exists()
