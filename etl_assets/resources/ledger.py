"""The ledger and warehouse database as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from sqlalchemy.engine import Engine

from etl_assets.db import get_engine
from etl_assets.ledger import Ledger


class LedgerResource(dg.ConfigurableResource):
    """The jobs ledger and the warehouse: one database, one pooled engine per process."""

    database_url: str
    retry_max_attempts: int = 3
    pool_size: int = 5
    max_overflow: int = 5
    pool_recycle_seconds: int = 1800

    @property
    def engine(self) -> Engine:
        """The process-wide engine for `database_url`."""
        return get_engine(
            self.database_url, self.pool_size, self.max_overflow, self.pool_recycle_seconds
        )

    @property
    def ledger(self) -> Ledger:
        """The ledger over that engine."""
        return Ledger(self.engine, max_attempts=self.retry_max_attempts)
