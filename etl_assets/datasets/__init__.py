"""Datasets: one declaration per kind of CSV (base.py says what a declaration holds).

`registry.py` lists them; the platform builds everything else from the declarations.
"""

from __future__ import annotations

from etl_assets.datasets.base import Dataset
from etl_assets.datasets.registry import (
    all_datasets,
    dataset_for_header,
    dataset_names,
    get_dataset,
    register,
)

__all__ = [
    "Dataset",
    "all_datasets",
    "dataset_for_header",
    "dataset_names",
    "get_dataset",
    "register",
]
