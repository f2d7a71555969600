"""The per-job partitions: one dynamic partition per job id, one set per dataset, so a
dataset's assets show only that dataset's jobs."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from etl_assets.datasets import Dataset, get_dataset
from etl_assets.ledger import Job

_partitions: dict[str, dg.DynamicPartitionsDefinition] = {}


def partitions_for(dataset: Dataset) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions of `dataset`'s jobs (the same object on every call)."""
    name = dataset.partitions_name
    if name not in _partitions:
        _partitions[name] = dg.DynamicPartitionsDefinition(name=name)
    return _partitions[name]


def add_requests(jobs: Iterable[Job]) -> list[dg.AddDynamicPartitionsRequest]:
    """The requests that add each job's partition to its dataset's partitions."""
    by_name: dict[str, list[str]] = {}
    for job in jobs:
        by_name.setdefault(get_dataset(job.dataset).partitions_name, []).append(job.job_id)
    return [
        dg.AddDynamicPartitionsRequest(partitions_def_name=name, partition_keys=keys)
        for name, keys in by_name.items()
    ]
