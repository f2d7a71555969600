"""The datasets the platform accepts: one line per dataset in `SHIPPED`.

Everything Dagster-facing (assets, jobs, checks, partitions, routing) is built from this
registry when the code location loads; `register` adds a dataset declared elsewhere (a
test, or a team's own package imported before the definitions are built).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from etl_assets.datasets.base import Dataset
from etl_assets.datasets.customers import CUSTOMERS
from etl_assets.datasets.inventory import INVENTORY
from etl_assets.datasets.sales import SALES
from etl_assets.errors import PermanentError

SHIPPED: tuple[Dataset, ...] = (
    SALES,
    INVENTORY,
    CUSTOMERS,
)

_registered: dict[str, Dataset] = {dataset.name: dataset for dataset in SHIPPED}


def register(dataset: Dataset) -> Dataset:
    """Add `dataset`; registering the same declaration again is a no-op. Raises ValueError
    when another dataset already has its name or its fact table."""
    known = _registered.get(dataset.name)
    if known is dataset:
        return dataset
    if known is not None:
        raise ValueError(f"a dataset named {dataset.name!r} is registered already")
    tables = {d.fact_table.name: d.name for d in _registered.values()}
    if dataset.fact_table.name in tables:
        raise ValueError(
            f"dataset {dataset.name!r}: fact table {dataset.fact_table.name} belongs to "
            f"dataset {tables[dataset.fact_table.name]!r}"
        )
    _registered[dataset.name] = dataset
    return dataset


def load_modules(names: Sequence[str]) -> None:
    """Import the modules that declare and `register` datasets of their own (the
    DATASET_MODULES setting); importing one twice registers nothing new."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise PermanentError(
                f"DATASET_MODULES names {name!r}, which cannot be imported: {exc}"
            ) from None


def unregister(name: str) -> None:
    """Remove a dataset added with `register` (tests)."""
    if name in {dataset.name for dataset in SHIPPED}:
        raise ValueError(f"{name!r} is a shipped dataset; remove it from SHIPPED instead")
    _registered.pop(name, None)


def all_datasets() -> list[Dataset]:
    """Every registered dataset, in registration order."""
    return list(_registered.values())


def dataset_names() -> list[str]:
    """The names of every registered dataset, sorted."""
    return sorted(_registered)


def get_dataset(name: str) -> Dataset:
    """The dataset called `name`; raises PermanentError naming the known ones."""
    try:
        return _registered[name]
    except KeyError:
        known = ", ".join(dataset_names())
        raise PermanentError(f"unknown dataset {name!r}; known datasets: {known}") from None


def dataset_for_header(header: Sequence[str], name: str = "the file") -> Dataset:
    """The one dataset whose columns the CSV header has (for a submission that does not say
    which); raises PermanentError when none or several fit."""
    columns = {column.strip().lower() for column in header}
    fitting = [d for d in _registered.values() if set(d.required_columns) <= columns]
    exact = [d for d in fitting if set(d.required_columns) == columns]
    if len(fitting) == 1 or len(exact) == 1:
        return (exact or fitting)[0]
    if not fitting:
        raise PermanentError(
            f"{name}: its header fits no dataset ({_describe(_registered.values())}); "
            "name the dataset"
        )
    raise PermanentError(
        f"{name}: its header fits datasets {', '.join(d.name for d in fitting)}; name one"
    )


def _describe(datasets: Iterable[Dataset]) -> str:
    return "; ".join(f"{d.name}: {', '.join(d.required_columns)}" for d in datasets)
