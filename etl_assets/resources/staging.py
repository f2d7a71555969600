"""Per-job intermediate storage on disk, in formats that hold data and cannot run code.

An asset writes its output for one job chunk by chunk and hands on a small `StagedChunks`
manifest; the next asset reads the chunks one at a time. Memory is bounded by a chunk, not by
the file. Everything of one job lives under `<staging_dir>/jobs/<job_id>/`, so pruning a job
removes one folder.

DataFrames (chunks, enrichment lookup tables) are Arrow IPC files: column types round-trip
(pandas strings, int64, float64, datetimes) and reading one decodes data only. Manifests are
JSON. Nothing here is a pickle: with pickles, write access to the staging folder would be code
execution in every run, so a file that is not Arrow or JSON is refused (`StagingFormatError`),
never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.ipc

from etl_assets.errors import PermanentError

ARROW_SUFFIX = ".arrow"
JSON_SUFFIX = ".json"
CHUNK_PATTERN = "chunk-*"  # any format: a chunk an older version left is replaced too


class StagingFormatError(PermanentError):
    """A staged file is not the Arrow IPC or JSON it should be (a pickle, say): refused."""


class JsonManifest(Protocol):
    """A small value the IO manager stores as JSON: it says how to become JSON and back."""

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self: ...


_MANIFEST_TYPES: dict[str, type[Any]] = {}
M = TypeVar("M", bound=type[Any])


def staged_as_json(cls: M) -> M:
    """Register `cls` (with `to_json` / `from_json`) as a value the staging IO manager stores
    as JSON; the JSON names the type, and only registered types are decoded."""
    _MANIFEST_TYPES[cls.__name__] = cls
    return cls


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` (index included) as an Arrow IPC file, atomically: a temporary name,
    then renamed, so a reader never sees half a file."""
    table = pa.Table.from_pandas(frame)
    temporary = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(temporary), "wb") as sink, pyarrow.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    os.replace(temporary, path)


def read_frame(path: Path) -> pd.DataFrame:
    """The DataFrame in the Arrow IPC file `path`; StagingFormatError if it is not one."""
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pyarrow.ipc.open_file(source).read_all()
    except pa.ArrowInvalid as exc:
        raise StagingFormatError(
            f"staged file {path} is not an Arrow IPC file ({exc}); it is not loaded"
        ) from None
    return table.to_pandas()


def _write_json(value: Any, path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    payload = {"type": type(value).__name__, "value": value.to_json()}
    temporary.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(temporary, path)


def _read_json(path: Path) -> Any:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        cls = _MANIFEST_TYPES[payload["type"]]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise StagingFormatError(
            f"staged file {path} is not a JSON manifest ({type(exc).__name__}); it is not loaded"
        ) from None
    return cls.from_json(payload["value"])


@staged_as_json
@dataclass(frozen=True)
class StagedChunks:
    """Where one asset's output for one job lies: `chunk_count` DataFrames in Arrow IPC."""

    directory: str
    chunk_count: int
    row_count: int

    def read(self, index: int) -> pd.DataFrame:
        """The chunk at `index` (0-based)."""
        return read_frame(Path(self.directory) / _chunk_name(index))

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return (self.read(index) for index in range(self.chunk_count))

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON."""
        return {
            "directory": self.directory,
            "chunk_count": self.chunk_count,
            "row_count": self.row_count,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The manifest `to_json` gave."""
        return cls(str(data["directory"]), int(data["chunk_count"]), int(data["row_count"]))


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
        write_frame(frame, self.directory / _chunk_name(self._count))
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
    """Stores small per-job asset values next to the job's chunks: DataFrames (lookup tables)
    as Arrow IPC, manifests registered with `staged_as_json` as JSON. Anything else is refused
    when written; a file that is not what its name says is refused when read."""

    base_dir: str

    def _path(self, asset_key: dg.AssetKey, job_id: str, suffix: str) -> Path:
        folder = Path(self.base_dir) / "jobs" / job_id
        return folder / f"{asset_key.to_python_identifier()}{suffix}"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Store `obj` for the output's job partition (atomically)."""
        writers: dict[str, Callable[[Any, Path], None]] = {
            ARROW_SUFFIX: write_frame,
            JSON_SUFFIX: _write_json,
        }
        if isinstance(obj, pd.DataFrame):
            suffix = ARROW_SUFFIX
        elif _MANIFEST_TYPES.get(type(obj).__name__) is type(obj):
            suffix = JSON_SUFFIX
        else:
            raise TypeError(
                f"staging stores DataFrames and registered manifests, not {type(obj).__name__}"
            )
        path = self._path(context.asset_key, context.partition_key, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        for other in (ARROW_SUFFIX, JSON_SUFFIX):  # a value of another type left earlier
            if other != suffix:
                path.with_suffix(other).unlink(missing_ok=True)
        writers[suffix](obj, path)

    def load_input(self, context: dg.InputContext) -> Any:
        """The upstream value for the input's job partition."""
        arrow = self._path(context.asset_key, context.partition_key, ARROW_SUFFIX)
        if arrow.exists():
            return read_frame(arrow)
        manifest = arrow.with_suffix(JSON_SUFFIX)
        if manifest.exists():
            return _read_json(manifest)
        raise StagingFormatError(
            f"nothing staged for {context.asset_key.to_user_string()} of job "
            f"{context.partition_key} (no {arrow.name} or {manifest.name}): run its step again"
        )


def _chunk_name(index: int) -> str:
    return f"chunk-{index:05d}{ARROW_SUFFIX}"
