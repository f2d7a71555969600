"""What a dataset declaration is made of: the types a dataset author writes, and nothing else.

A dataset is one `Dataset`: the columns of its CSV and their rules, its natural key, the
warehouse table it loads (its fact table, with `job_id` and `source_row` lineage on every
row), the dimension tables a chunk updates, the HTTP lookups that enrich its rows, its
transform, what its load event names, the columns completeness is checked on, and its own
checks. The platform builds the Dagster assets, job, checks, routing, batch path, row retry,
retention, completeness, ops API and CLI support from it; see docs/datasets.md.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa

ROW_NUMBER = "source_row"  # the record's line in the file (header = 1); travels with the row
JOB_ID = "job_id"  # the job that loaded a warehouse row: lineage, on every fact row
LINEAGE_COLUMNS = (JOB_ID, ROW_NUMBER)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")


def lineage_columns() -> list[sa.Column[Any]]:
    """The columns every fact table ends with: the job that loaded the row and its line in
    that job's file (new Column objects: one set per table)."""
    return [
        sa.Column(JOB_ID, sa.String(32), nullable=False),
        sa.Column(ROW_NUMBER, sa.BigInteger, nullable=False),
    ]


class Kind(enum.Enum):
    """What a column holds, which decides how it is parsed and checked."""

    TEXT = "text"
    CODE = "code"  # an identifier: trimmed and upper-cased, e.g. a SKU or a currency
    DATE = "date"  # ISO YYYY-MM-DD
    POSITIVE_INT = "positive whole number"
    NON_NEGATIVE_INT = "non-negative whole number"
    NON_NEGATIVE_DECIMAL = "non-negative number"


@dataclass(frozen=True)
class ColumnRule:
    """One required column of a dataset's CSV and how its values must look."""

    name: str
    kind: Kind
    max_length: int = 64
    pattern: str | None = None  # a full-match regular expression for TEXT and CODE values
    pattern_hint: str = ""  # how a valid value looks, for the reason text
    choices: frozenset[str] | None = None  # the only values allowed (after trimming, casing)
    choices_hint: str = ""  # what the allowed values are, for the reason text


@dataclass(frozen=True)
class TransformContext:
    """What a transform may use besides the rows."""

    job_id: str
    reporting_currency: str


# rows (validated, with every enrichment's columns) -> warehouse rows (fact table columns)
Transform = Callable[[pd.DataFrame, TransformContext], pd.DataFrame]
# (API client, distinct lookup keys as a frame of the key columns, context) -> the found rows:
# the key columns plus the enrichment's `returns` columns, one row per key the API knows
Lookup = Callable[[Any, pd.DataFrame, TransformContext], pd.DataFrame]


@dataclass(frozen=True)
class Check:
    """A warehouse check of a dataset's fact table: the SELECT of what offends it.

    `offending(context)` returns a SELECT of the offending rows or keys (the sample shown in
    the UI is ordered by its columns, first to last); an empty result is green. Blocking
    checks stop the downstream tables that consume the dataset from being refreshed on top of
    bad rows.
    """

    name: str
    description: str  # what holds when the check is green (the UI shows it)
    what: str  # what one offending item is, e.g. "fact rows without a product"
    offending: Callable[[CheckContext], sa.Select[Any]]
    blocking: bool = True
    # Figures shown beside the result, each a SELECT of one value (e.g. rows still loading).
    figures: Callable[[CheckContext], Mapping[str, sa.Select[Any]]] | None = None


@dataclass(frozen=True)
class CheckContext:
    """What a check's query may use."""

    dataset: Dataset
    reporting_currency: str


@dataclass(frozen=True)
class Enrichment:
    """Values looked up in an HTTP API for the distinct keys of a job's rows.

    The platform collects the distinct values of `keys` while validating, asks the API once
    per job (one asset per enrichment, in its own concurrency pool), and joins what comes
    back to every row. A row whose key the API does not know is quarantined at the enrich
    stage with `unknown`, a reason formatted from the row's values, e.g.
    "sku: {sku} is not in the product catalog".
    """

    name: str  # the asset's name, e.g. "fx_rates"
    resource: str  # the resource key of the API client, e.g. "fx_api"
    keys: tuple[str, ...]  # columns of the dataset whose values are looked up
    returns: tuple[str, ...]  # columns the lookup adds to each row
    lookup: Lookup
    unknown: str  # why a row with an unknown key is quarantined (str.format over the row)
    description: str  # one line for the UI
    pool: str = ""  # concurrency pool of the asset; default: the resource key
    checks: tuple[Check, ...] = ()  # checks of the fact table this enrichment brings

    @property
    def concurrency_pool(self) -> str:
        """The pool that caps how many steps call this API at once."""
        return self.pool or self.resource


@dataclass(frozen=True)
class Dimension:
    """A dimension table a chunk of warehouse rows updates, in the chunk's transaction.

    `rows(facts, job_id)` gives the dimension rows (columns of `table`, one per `key`) the
    chunk's fact rows imply; a new key is inserted, an existing one gets `updates(table,
    new)` (new: the incoming row's columns), written only when that changes the row. The
    fact table's `key` column must find its row here (the `fact_dimensions_exist` check).
    """

    table: sa.Table
    key: str
    rows: Callable[[pd.DataFrame, str], pd.DataFrame]
    updates: Callable[[sa.Table, Any], Mapping[str, Any]]


@dataclass(frozen=True)
class Completeness:
    """The columns `etl validate` checks for missing dates: per group (e.g. store), the dates
    of a range with no loaded rows."""

    date: str
    group: str


@dataclass(frozen=True)
class Dataset:
    """One kind of CSV: everything the platform needs to validate, enrich, load and check it."""

    name: str  # lower_snake_case: the asset key prefix, group, job and inbox folder name
    description: str  # one line: what a row is
    columns: tuple[ColumnRule, ...]
    natural_key: tuple[str, ...]  # a row seen again under this key is a duplicate
    fact_table: sa.Table  # has the natural key as primary key and the lineage columns
    transform: Transform | None = None  # None: the rows load as they are
    enrichments: tuple[Enrichment, ...] = ()
    dimensions: tuple[Dimension, ...] = ()
    # What the dataset's `transaction.parsed` event names: payload key -> fact table column.
    event_keys: Mapping[str, str] = field(default_factory=dict)
    completeness: Completeness | None = None
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        problems = declaration_problems(self)
        if problems:
            raise ValueError(f"dataset {self.name!r}: " + "; ".join(problems))

    @property
    def required_columns(self) -> list[str]:
        """Columns the CSV header must have."""
        return [rule.name for rule in self.columns]

    @property
    def partitions_name(self) -> str:
        """The name of the dataset's dynamic partitions (one per job)."""
        return partitions_name(self.name)

    @property
    def job_name(self) -> str:
        """The name of the dataset's asset job."""
        return f"{self.name}_job"


def partitions_name(dataset: str) -> str:
    """The name of a dataset's dynamic partitions, one per job: `<dataset>_jobs`."""
    return f"{dataset}_jobs"


def declaration_problems(dataset: Dataset) -> list[str]:
    """What is wrong with a declaration, so a mistake shows when the module is imported
    rather than as a failed job."""
    problems = []
    if not NAME_PATTERN.fullmatch(dataset.name):
        problems.append("the name must be lower_snake_case, at most 40 characters")
    columns = set(dataset.required_columns)
    table = set(dataset.fact_table.c.keys())
    key = {c.name for c in dataset.fact_table.primary_key}
    if len(columns) != len(dataset.columns):
        problems.append("a column is declared twice")
    if missing := set(LINEAGE_COLUMNS) - table:
        problems.append(f"the fact table needs the lineage columns {sorted(missing)}")
    if key != set(dataset.natural_key):
        problems.append(f"the fact table's primary key {sorted(key)} is not the natural key")
    if unknown := set(dataset.natural_key) - columns:
        problems.append(f"natural key columns {sorted(unknown)} are not CSV columns")
    for enrichment in dataset.enrichments:
        if unknown := set(enrichment.keys) - columns:
            problems.append(f"enrichment {enrichment.name} looks up unknown {sorted(unknown)}")
    named = [e.name for e in dataset.enrichments]
    if len(set(named)) != len(named) or "source_rows" in named:
        problems.append("enrichment names must be unique and not 'source_rows'")
    if unknown := set(dataset.event_keys.values()) - table:
        problems.append(f"event keys name columns {sorted(unknown)} not in the fact table")
    for dimension in dataset.dimensions:
        if dimension.key not in table:
            problems.append(f"dimension {dimension.table.name} key is not a fact column")
    if dataset.completeness is not None:
        wanted = {dataset.completeness.date, dataset.completeness.group}
        if unknown := wanted - table:
            problems.append(f"completeness columns {sorted(unknown)} are not fact columns")
    return problems
