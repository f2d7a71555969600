"""The whole database schema: importing this module registers every table on `metadata`.

Alembic's environment and the schema tests compare migrations against it.
"""

from etl_assets.datasets import registry  # noqa: F401 - every dataset's warehouse tables
from etl_assets.db import metadata
from etl_assets.downstream import registry as downstream  # noqa: F401 - the downstream tables
from etl_assets.events import store  # noqa: F401 - registers the events tables
from etl_assets.ledger import schema  # noqa: F401 - registers the ledger tables

__all__ = ["metadata"]
