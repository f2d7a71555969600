"""Per-job intermediate storage on disk: numbered chunk files of DataFrames.

An asset writes its output for one job chunk by chunk and hands on a small `StagedChunks`
manifest; the next asset reads the chunks one at a time. Memory is bounded by a chunk, not by
the file. Everything of one job lives under `<staging_dir>/jobs/<job_id>/`, so pruning a job
removes one folder.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

CHUNK_PATTERN = "chunk-*.pkl"


@dataclass(frozen=True)
class StagedChunks:
    """Where one asset's output for one job lies: `chunk_count` pickled DataFrames."""

    directory: str
    chunk_count: int
    row_count: int

    def read(self, index: int) -> pd.DataFrame:
        """The chunk at `index` (0-based)."""
        frame: pd.DataFrame = pd.read_pickle(Path(self.directory) / _chunk_name(index))
        return frame

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return (self.read(index) for index in range(self.chunk_count))


class ChunkWriter:
    """Writes one asset's chunks for one job, replacing what an earlier attempt left."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(CHUNK_PATTERN):
            stale.unlink()
        self._count = 0
        self._rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append a chunk (written to a temporary name, then renamed: never half a chunk)."""
        target = self.directory / _chunk_name(self._count)
        temporary = target.with_suffix(".tmp")
        frame.to_pickle(temporary)
        os.replace(temporary, target)
        self._count += 1
        self._rows += len(frame)

    def finish(self) -> StagedChunks:
        """The manifest of everything written."""
        return StagedChunks(str(self.directory), self._count, self._rows)


class StagingResource(dg.ConfigurableResource):
    """The staging folder: per-job chunk folders and the archive of submitted source files."""

    base_dir: str

    def job_dir(self, job_id: str) -> Path:
        """Everything staged for one job."""
        return Path(self.base_dir) / "jobs" / job_id

    def chunk_writer(self, job_id: str, name: str) -> ChunkWriter:
        """A writer for output `name` of job `job_id`."""
        return ChunkWriter(self.job_dir(job_id) / name)

    def remove_job(self, job_id: str) -> None:
        """Delete everything staged for the job (its archived source file stays)."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)


class JobStagingIOManager(dg.ConfigurableIOManager):
    """Stores small per-job asset values (manifests, lookup tables) next to the job's chunks."""

    base_dir: str

    def _path(self, asset_key: dg.AssetKey, job_id: str) -> Path:
        return Path(self.base_dir) / "jobs" / job_id / f"{asset_key.to_python_identifier()}.pkl"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Pickle `obj` for the output's job partition (atomically)."""
        path = self._path(context.asset_key, context.partition_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)

    def load_input(self, context: dg.InputContext) -> Any:
        """Unpickle the upstream value for the input's job partition."""
        path = self._path(context.asset_key, context.partition_key)
        with path.open("rb") as handle:
            return pickle.load(handle)


def _chunk_name(index: int) -> str:
    return f"chunk-{index:05d}.pkl"
