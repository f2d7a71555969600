"""Datasets the platform accepts. Each is one module: its columns, rules and warehouse tables."""

from __future__ import annotations

from etl_assets.datasets.sales import SALES, Dataset
from etl_assets.errors import PermanentError

DATASETS: dict[str, Dataset] = {SALES.name: SALES}


def get_dataset(name: str) -> Dataset:
    """The dataset called `name`; raises PermanentError naming the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise PermanentError(f"unknown dataset {name!r}; known datasets: {known}") from None


__all__ = ["DATASETS", "Dataset", "get_dataset"]
