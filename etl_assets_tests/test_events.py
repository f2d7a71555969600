"""The event adapter: handlers per topic, every event and outcome recorded, failures retried,
and `transaction.parsed` published after a job's load commits."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import Platform

from etl_assets.cli import main
from etl_assets.events import store as events
from etl_assets.events.store import (
    TRANSACTION_PARSED,
    Event,
    list_events,
    publish_event,
    record_event,
    register_handler,
    retry_events,
    unregister_handler,
)
from etl_assets.ledger import JobStatus


class Flaky:
    """A handler that fails until told to work, remembering what it saw."""

    def __init__(self, failing: bool = True) -> None:
        self.failing = failing
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.seen.append(event)
        if self.failing:
            raise RuntimeError("forecast service unavailable")


@pytest.fixture
def handlers() -> Iterator[dict[str, Flaky]]:
    """A working and a failing handler on test topics and on transaction.parsed."""
    made = {"works": Flaky(failing=False), "fails": Flaky()}
    for topic in ("forecast.requested", TRANSACTION_PARSED):
        for name, handler in made.items():
            register_handler(topic, handler, name=name)
    yield made
    for topic in ("forecast.requested", TRANSACTION_PARSED):
        for name in made:
            unregister_handler(topic, name)


def test_every_event_and_each_handler_outcome_is_recorded(
    engine: sa.Engine, handlers: dict[str, Flaky], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="etl_assets.events.store")
    event_id = publish_event("forecast.requested", {"products": ["SKU-0001"]}, engine=engine)

    assert [e.payload for e in handlers["works"].seen] == [{"products": ["SKU-0001"]}]
    [event] = list_events(engine)
    assert (event["id"], event["topic"], event["status"]) == (
        event_id,
        "forecast.requested",
        "failed",
    )
    runs = {run["handler"]: run for run in event["handlers"]}
    assert (runs["works"]["status"], runs["works"]["error"]) == ("ok", None)
    assert runs["fails"]["status"] == "failed"
    assert runs["fails"]["error"] == "RuntimeError: forecast service unavailable"
    assert f"Event published: id={event_id} topic=forecast.requested" in caplog.text


def test_a_failed_handler_is_retried_alone(engine: sa.Engine, handlers: dict[str, Flaky]) -> None:
    event_id = publish_event("forecast.requested", {"products": []}, engine=engine)
    assert retry_events(engine) == {event_id: "failed"}  # still failing
    handlers["fails"].failing = False
    assert retry_events(engine) == {event_id: "done"}
    assert retry_events(engine) == {}  # nothing left to do
    [event] = list_events(engine)
    runs = {run["handler"]: run for run in event["handlers"]}
    assert (runs["fails"]["status"], runs["fails"]["attempts"]) == ("ok", 3)
    assert (runs["works"]["attempts"], len(handlers["works"].seen)) == (1, 1)  # not run again


def test_an_event_rolls_back_with_its_transaction(engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record_event(conn, "forecast.requested", {"products": []})
        raise RuntimeError("the change it describes failed")
    assert list_events(engine) == []


def test_an_event_whose_handlers_never_ran_is_picked_up_by_retry(
    engine: sa.Engine, handlers: dict[str, Flaky]
) -> None:
    with engine.begin() as conn:  # e.g. the process died between the commit and the handlers
        event_id = record_event(conn, "forecast.requested", {"products": []})
    assert list_events(engine)[0]["status"] == "pending"
    handlers["fails"].failing = False
    assert retry_events(engine) == {event_id: "done"}


def test_a_jobs_load_publishes_transaction_parsed_and_a_failing_handler_undoes_nothing(
    platform: Platform, handlers: dict[str, Flaky], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = platform.submit("north.csv", rows=30)
    platform.run_all()

    done = platform.ledger.get(job.job_id)
    assert done.status is JobStatus.COMPLETED
    assert platform.facts(job.job_id) == 30
    [event] = handlers["works"].seen
    assert event.topic == TRANSACTION_PARSED and event.job_id == job.job_id
    payload = event.payload
    assert (payload["job_id"], payload["dataset"], payload["rows_loaded"]) == (
        job.job_id,
        "sales",
        30,
    )
    with platform.ledger.engine.connect() as conn:
        for key, column in (
            ("products", "sku"),
            ("customers", "customer_id"),
            ("dates", "order_date"),
        ):
            expected = conn.execute(
                sa.text(f"SELECT DISTINCT {column} FROM sales_fact ORDER BY {column}")
            ).scalars()
            assert payload[key] == [str(value) for value in expected]

    # The failure is recorded and retryable from the command line.
    monkeypatch.setenv("DATABASE_URL", platform.settings.database_url)
    cli = CliRunner()
    listed = json.loads(cli.invoke(main, ["events", "list", "--status", "failed", "--json"]).stdout)
    assert [e["job_id"] for e in listed] == [job.job_id]
    assert "fails=failed (RuntimeError" in cli.invoke(main, ["events", "list"]).output
    assert cli.invoke(main, ["events", "retry", "--all-failed"]).exit_code == 1
    handlers["fails"].failing = False
    retried = cli.invoke(main, ["events", "retry", str(listed[0]["id"])])
    assert retried.exit_code == 0 and retried.stdout == f"event {listed[0]['id']}: done\n"
    assert len(handlers["works"].seen) == 1


def test_handler_names_default_to_the_function(handlers: dict[str, Flaky]) -> None:
    @register_handler("forecast.requested")
    def refresh(event: Event) -> None:
        """A handler."""

    name = f"{__name__}.test_handler_names_default_to_the_function.<locals>.refresh"
    assert events.handlers_for("forecast.requested")[name] is refresh
    unregister_handler("forecast.requested", name)


class WebhookReceiver:
    """A local HTTP endpoint that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """EVENTS_WEBHOOK_URL pointing at a local receiver; the platform handlers re-registered."""
    receiver = WebhookReceiver()
    monkeypatch.setenv("EVENTS_WEBHOOK_URL", receiver.url)
    monkeypatch.setattr(events, "_platform_handlers_registered", False)
    yield receiver
    unregister_handler(events.ALL_TOPICS, "webhook")
    receiver.server.shutdown()


def test_the_webhook_gets_every_event_and_a_failed_post_is_retried(
    engine: sa.Engine, webhook: WebhookReceiver
) -> None:
    webhook.status = 503
    event_id = publish_event("forecast.requested", {"products": ["SKU-0001"]}, engine=engine)
    [event] = list_events(engine)
    [run] = event["handlers"]
    assert (run["handler"], run["status"]) == ("webhook", "failed")
    assert run["error"] == "RuntimeError: webhook answered HTTP 503"  # no URL, no token

    webhook.status = 204
    assert retry_events(engine) == {event_id: "done"}
    assert [body["payload"] for body in webhook.bodies] == [{"products": ["SKU-0001"]}] * 2
    assert webhook.bodies[-1]["id"] == event_id
    assert webhook.bodies[-1]["topic"] == "forecast.requested"


def test_a_failed_handler_missing_from_this_process_keeps_its_event_failed(
    engine: sa.Engine, handlers: dict[str, Flaky]
) -> None:
    event_id = publish_event("forecast.requested", {}, engine=engine)
    unregister_handler("forecast.requested", "fails")  # e.g. a CLI without that module
    assert retry_events(engine) == {event_id: "failed"}
    register_handler("forecast.requested", handlers["fails"], name="fails")
