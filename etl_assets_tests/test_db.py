"""The shared engine: pooled PostgreSQL connections survive the server dropping them."""

from __future__ import annotations

import sqlalchemy as sa
from conftest import emptied

from etl_assets.db import create_engine
from etl_assets.ledger import Ledger


def test_a_pooled_connection_killed_by_the_server_does_not_fail_the_next_use(
    postgres_url: str,
) -> None:
    """A PostgreSQL restart, a failover or an idle-session timeout closes the connections a
    process keeps in its pool; the next checkout must find a live one (`pool_pre_ping`)
    instead of handing the dead one to the ledger, which would fail that step."""
    url = emptied(postgres_url)
    engine = create_engine(url, pool_size=1, max_overflow=0)
    admin = create_engine(url)
    try:
        ledger = Ledger(engine)
        ledger.status_counts()  # opens the one pooled connection
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.connect() as conn:
            # With a timeout, PostgreSQL (14+) returns once the backend has exited.
            killed = sa.text("SELECT pg_terminate_backend(:p, 10000)")
            assert conn.execute(killed, {"p": pid}).scalar_one() is True

        assert ledger.status_counts() == {}  # the next use works, on a new connection
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
    finally:
        engine.dispose()
        admin.dispose()
