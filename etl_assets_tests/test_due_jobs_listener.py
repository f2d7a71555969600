"""A job created anywhere is announced on PostgreSQL when its insert commits, and a
listening process (the ops API) starts its run at once, through a lost connection too."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import emptied
from fastapi.testclient import TestClient

from etl_assets.config import Settings
from etl_assets.db import create_engine
from etl_assets.ledger import Ledger
from etl_assets.ops.api import create_app
from etl_assets.runtime import dispatching
from etl_assets.runtime.due_jobs_listener import DueJobsListener

DEADLINE = 10.0  # seconds for a notification to arrive: it takes milliseconds


class Calls:
    """Counts `on_due` calls; `wait` for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self._event.set()

    def wait(self, timeout: float = DEADLINE) -> bool:
        arrived = self._event.wait(timeout)
        self._event.clear()
        return arrived


def create(ledger: Ledger, content: str) -> bool:
    _, created = ledger.create_job(
        dataset="sales",
        source_uri=f"/archive/{content}.csv",
        source_name=f"{content}.csv",
        content_sha256=content * 8,
        size_bytes=10,
    )
    return created


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied (SQLite has no notifications: see
    test_sqlite_has_nothing_to_listen_to)."""
    return emptied(postgres_url)


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    engine = create_engine(pg_url)
    yield Ledger(engine, max_attempts=3)
    engine.dispose()


@pytest.fixture
def listening(pg_ledger: Ledger) -> Iterator[tuple[DueJobsListener, Calls]]:
    calls = Calls()
    listener = DueJobsListener(pg_ledger.engine, calls).start()
    assert listener.wait_listening(DEADLINE)
    assert calls.wait()  # it looks once as it starts: jobs may predate the LISTEN
    yield listener, calls
    listener.stop()


def test_a_new_job_is_announced_when_its_insert_commits(
    pg_ledger: Ledger, listening: tuple[DueJobsListener, Calls]
) -> None:
    _, calls = listening
    assert create(pg_ledger, "a1")
    assert calls.wait(), "the listener never heard of the new job"
    # The same content again is no new job: nothing is announced.
    assert not create(pg_ledger, "a1")
    assert not calls.wait(timeout=1.5)


def test_the_listener_listens_again_after_its_connection_is_cut(
    pg_ledger: Ledger, listening: tuple[DueJobsListener, Calls]
) -> None:
    listener, calls = listening
    with pg_ledger.engine.begin() as conn:
        cut = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN etl_jobs_due%' AND pid <> pg_backend_pid()"
            )
        ).all()
    assert cut, "no listening session found to cut"
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and not calls.wait(timeout=0.2):
        pass  # its look on connecting again is the sign it is back
    assert listener.wait_listening(DEADLINE)
    assert create(pg_ledger, "b2")
    assert calls.wait(), "after the cut, the listener never heard of the new job"


def test_sqlite_has_nothing_to_listen_to(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    calls = Calls()
    listener = DueJobsListener(engine, calls).start()
    assert not listener.wait_listening(0.2) and calls.count == 0
    listener.stop()
    engine.dispose()


def test_the_api_starts_jobs_submitted_elsewhere(
    pg_url: str, pg_ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `etl api` listens while it runs; each announcement starts due jobs, as its own
    # uploads do (start_due_jobs is replaced here: the real one needs the daemon's
    # instance, which test_daemon.py runs).
    calls = Calls()
    monkeypatch.setattr(dispatching, "start_due_jobs", lambda ledger, settings: calls())
    settings = Settings(
        data_dir=str(tmp_path / "data"), database_url=pg_url, dagster_home=str(tmp_path / "home")
    ).resolved()
    app = create_app(settings, insecure_no_auth=True, start_jobs_as_submitted=True)
    with TestClient(app):
        assert calls.wait()  # the look as it starts
        assert create(pg_ledger, "c3")
        assert calls.wait(), "the API never started the job submitted elsewhere"
    before = calls.count
    assert create(pg_ledger, "d4")  # the app has stopped: so has its listener
    assert not calls.wait(timeout=1.5) and calls.count == before
