"""The ops HTTP API: every endpoint with and without auth and with bad input, figures against
the hand-computed seeded ledger (ops_seed), and the repair story end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import Platform
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from ops_seed import C_ERROR, EXPECTED, free_port, seed_ledger
from prometheus_client.parser import text_string_to_metric_families

from etl_assets.cli import main
from etl_assets.config import Settings
from etl_assets.datasets.samples import corrupt, sales_frame, write_sales_csv
from etl_assets.db import create_engine, utcnow
from etl_assets.ops import read_model as rm
from etl_assets.ops.api import create_app
from etl_assets.reference_api import ReferenceApiServer
from etl_assets.reference_api.server import Fault

VIEWER, OPERATOR = "viewer-secret-1", "operator-secret-1"
UI = "http://dagster.test:3000"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}
MISSING = "01JD3S6S8F6Q2W5N1B7C9XKZ4M"  # a well-formed id no job has

READS = [
    "/v1/jobs",
    "/v1/failed-rows",
    "/v1/uploads/active",
    "/v1/metrics",
    "/v1/activity",
    "/metrics",
]


def ops_settings(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(
        settings,
        ops_api_viewer_tokens=f"{VIEWER}, other-viewer",
        ops_api_operator_tokens=OPERATOR,
        dagster_ui_url=UI,
        **changes,
    )


@pytest.fixture
def client(settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    app = create_app(ops_settings(settings), engine=engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def ids(engine: sa.Engine) -> dict[str, str]:
    return seed_ledger(engine, utcnow())


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def csv_bytes(tmp_path: Path, rows: int = 5, every: int = 0, name: str = "up.csv") -> bytes:
    frame = sales_frame(rows, seed=rows, order_prefix=Path(name).stem.upper())
    if every:
        corrupt(frame, every)
    return write_sales_csv(tmp_path / name, frame).read_bytes()


# ------------------------------------------------------------------------------ auth


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_token(client: TestClient, path: str) -> None:
    missing = client.get(path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert error_of(missing)["code"] == "unauthorized"
    wrong = client.get(path, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, error_of(wrong)["message"]) == (
        401,
        "unknown bearer token: send Authorization: Bearer <token>",
    )
    assert client.get(path, headers={"Authorization": f"Basic {VIEWER}"}).status_code == 401
    assert client.get(path, headers=AS_VIEWER).status_code == 200
    assert client.get(path, headers={"Authorization": "Bearer other-viewer"}).status_code == 200
    assert client.get(path, headers=AS_OPERATOR).status_code == 200


def test_repairs_and_uploads_need_an_operator(
    client: TestClient, ids: dict[str, str], tmp_path: Path
) -> None:
    calls = [
        ("post", f"/v1/jobs/{ids['C']}/retry", {}),
        ("post", f"/v1/jobs/{ids['G']}/cancel", {}),
        ("post", "/v1/failed-rows/1/retry", {}),
        ("post", "/v1/jobs", {"files": {"file": ("a.csv", csv_bytes(tmp_path), "text/csv")}}),
    ]
    for method, path, extra in calls:
        assert getattr(client, method)(path, **extra).status_code == 401, path
        denied = getattr(client, method)(path, headers=AS_VIEWER, **extra)
        assert denied.status_code == 403, path
        assert error_of(denied)["code"] == "forbidden"
    # nothing changed
    assert client.get(f"/v1/jobs/{ids['C']}", headers=AS_VIEWER).json()["job"]["status"] == "failed"
    assert client.get("/v1/jobs", headers=AS_VIEWER).json()["total"] == 11


OPEN_ROUTES = {"/", "/healthz", "/readyz", "/dashboard"}


def test_every_other_route_needs_a_token(client: TestClient, ids: dict[str, str]) -> None:
    """Every route of the app, found from the app itself (a new one is covered too), answers
    401 without a token, before it looks at the path or the body."""
    checked = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute) or route.path in OPEN_ROUTES:
            continue
        path = route.path.replace("{job_id}", ids["C"]).replace("{row_id}", "1")
        for method in sorted(route.methods):
            response = client.request(method, path)
            assert response.status_code == 401, (method, path)
            assert error_of(response)["code"] == "unauthorized"
            checked.append(f"{method} {route.path}")
    assert "GET /v1/jobs/{job_id}" in checked and len(checked) >= 11


def test_health_dashboard_and_openapi_are_open(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert client.get("/dashboard").headers["content-type"].startswith("text/html")
    assert client.get("/openapi.json").json()["info"]["title"] == "ETL ops API"


def test_the_app_refuses_to_start_without_tokens(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="insecure-no-auth"):
        create_app(settings)
    open_app = TestClient(create_app(settings, insecure_no_auth=True))
    assert open_app.get("/v1/jobs").status_code == 200
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(main, ["api", "--port", "0"])
    assert result.exit_code == 1
    assert "no OPS_API_VIEWER_TOKENS or OPS_API_OPERATOR_TOKENS are set" in result.output


# ------------------------------------------------------------------------------ jobs


def test_list_jobs_filters_sorts_and_pages(client: TestClient, ids: dict[str, str]) -> None:
    def get(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/jobs", params=params, headers=AS_VIEWER)
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert get()["total"] == 11
    failed = get(status="failed", sort="created_at")
    assert [j["job_id"] for j in failed["items"]] == [ids["D"], ids["C"]]
    both = get(status=["failed", "cancelled"])
    assert both["total"] == 3
    assert [j["job_id"] for j in get(error_type="permanent")["items"]] == [ids["C"]]
    since = (utcnow() - dt.timedelta(days=1)).isoformat()
    assert get(created_from=since)["total"] == 9
    assert get(created_to=since)["total"] == 2
    assert get(dataset="other")["total"] == 0
    page = get(sort="-priority", limit=1, offset=0)
    assert (page["total"], page["items"][0]["job_id"], page["limit"]) == (11, ids["G"], 1)
    assert (
        get(limit=5, offset=10)["items"][0]["job_id"]
        == get(sort="-created_at")["items"][10]["job_id"]
    )
    first = get(limit=4)
    assert (first["has_more"], first["total_is_estimate"]) == (True, False)
    after = get(limit=4, cursor=first["next_cursor"])
    assert [j["job_id"] for j in after["items"]] == [j["job_id"] for j in get()["items"][4:8]]


def test_list_paging_refuses_bad_cursors_and_deep_offsets(client: TestClient) -> None:
    for path in ("/v1/jobs", "/v1/failed-rows"):
        bad = client.get(path, params={"cursor": "bm9wZQ"}, headers=AS_VIEWER)
        assert (bad.status_code, error_of(bad)["code"]) == (400, "bad_cursor"), path
        deep = client.get(path, params={"offset": rm.MAX_OFFSET + 1}, headers=AS_VIEWER)
        assert deep.status_code == 422, path


def test_each_request_reads_the_metrics_once(
    client: TestClient, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/v1/metrics and /metrics compute the metrics once and hand them to the alert rules
    and the readiness check, instead of each reading the ledger again."""
    calls: list[int] = []
    real = rm.metrics

    def counted(*args: Any, **kwargs: Any) -> rm.Metrics:
        calls.append(kwargs.get("window_seconds", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(rm, "metrics", counted)
    for path in ("/v1/metrics", "/metrics"):
        calls.clear()
        assert client.get(path, headers=AS_VIEWER).status_code == 200, path
        assert len(calls) == 1, path


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"status": "exploded"}, 422, "query.status"),
        ({"sort": "password"}, 422, "query.sort"),
        ({"limit": 0}, 422, "query.limit"),
        ({"limit": 100000}, 422, "query.limit"),
        ({"offset": -1}, 422, "query.offset"),
        ({"created_from": "yesterday"}, 422, "query.created_from"),
        ({"error_type": "weird"}, 422, "query.error_type"),
        ({"dataset": "sales\x00; DROP TABLE jobs"}, 422, "query.dataset"),
        ({"created_from": "2026-01-02", "created_to": "2026-01-01"}, 400, "created_from"),
        ({"created_from": "0001-01-01T00:00:00+05:00"}, 400, "out of range"),
        ({"created_to": "9999-12-31T23:59:59-05:00"}, 400, "out of range"),
    ],
)
def test_bad_job_filters_are_4xx_with_a_clear_message(
    client: TestClient, params: dict[str, Any], status: int, needle: str
) -> None:
    response = client.get("/v1/jobs", params=params, headers=AS_VIEWER)
    assert response.status_code == status
    assert needle in error_of(response)["message"]


def test_job_detail_traceback_only_for_operators(client: TestClient, ids: dict[str, str]) -> None:
    seen = client.get(f"/v1/jobs/{ids['C']}", headers=AS_VIEWER).json()
    assert seen["job"]["error_message"] == C_ERROR
    assert seen["job"]["error_traceback"] is None
    assert seen["dagster_run_url"] == f"{UI}/runs/run-c"
    assert seen["attempts"][0]["outcome"] == "failed"
    full = client.get(f"/v1/jobs/{ids['C']}", headers=AS_OPERATOR).json()
    assert full["job"]["error_traceback"].startswith("Traceback")

    running = client.get(f"/v1/jobs/{ids['F']}", headers=AS_VIEWER).json()
    assert running["progress"]["percent_complete"] == 50.0
    assert running["progress"]["rows_total"] == 1000
    assert running["progress"]["eta_seconds"] is not None


@pytest.mark.parametrize(
    ("job_id", "status", "code"),
    [
        ("abc", 422, "invalid_request"),
        ("01jd3s6s8f6q2w5n1b7c9xkz4m", 422, "invalid_request"),
        ("%00" * 26, 422, "invalid_request"),
        (MISSING, 404, "job_not_found"),
    ],
)
def test_bad_and_unknown_job_ids(client: TestClient, job_id: str, status: int, code: str) -> None:
    for method, path in [
        ("get", f"/v1/jobs/{job_id}"),
        ("post", f"/v1/jobs/{job_id}/retry"),
        ("post", f"/v1/jobs/{job_id}/cancel"),
    ]:
        headers = AS_OPERATOR if method == "post" else AS_VIEWER
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == status, path
        assert error_of(response)["code"] == code


def test_retry_a_failed_job(client: TestClient, ids: dict[str, str]) -> None:
    response = client.post(f"/v1/jobs/{ids['C']}/retry", headers=AS_OPERATOR)
    assert response.status_code == 200, response.text
    job = response.json()["job"]
    assert (job["status"], job["priority"], job["max_attempts"]) == ("pending", 10, 4)
    assert "pending again" in response.json()["message"]
    again = client.post(f"/v1/jobs/{ids['C']}/retry", headers=AS_OPERATOR)
    assert again.status_code == 409
    assert error_of(again)["message"] == f"job {ids['C']} cannot move from pending to pending"
    custom = client.post(f"/v1/jobs/{ids['D']}/retry", json={"priority": 50}, headers=AS_OPERATOR)
    assert custom.json()["job"]["priority"] == 50
    bad = client.post(f"/v1/jobs/{ids['D']}/retry", json={"priority": "high"}, headers=AS_OPERATOR)
    assert bad.status_code == 422


def test_cancel_pending_and_running_jobs(client: TestClient, ids: dict[str, str]) -> None:
    pending = client.post(f"/v1/jobs/{ids['G']}/cancel", headers=AS_OPERATOR)
    assert pending.status_code == 200
    assert pending.json()["job"]["status"] == "cancelled"
    running = client.post(f"/v1/jobs/{ids['F']}/cancel", headers=AS_OPERATOR)
    assert running.json()["job"]["status"] == "cancelled"
    assert "run run-f: stops at its next heartbeat" in running.json()["message"]
    finished = client.post(f"/v1/jobs/{ids['A']}/cancel", headers=AS_OPERATOR)
    assert finished.status_code == 409
    assert "cannot move from completed to cancelled" in error_of(finished)["message"]


# ------------------------------------------------------------------------------ uploads


def test_upload_creates_a_job_and_a_duplicate_answers_the_existing_one(
    client: TestClient, tmp_path: Path
) -> None:
    content = csv_bytes(tmp_path, rows=7)
    files = {"file": ("north.csv", content, "text/csv")}
    data = {"title": "North Q1", "priority": "3"}
    first = client.post("/v1/jobs", files=files, data=data, headers=AS_OPERATOR)
    assert first.status_code == 201, first.text
    job = first.json()["job"]
    assert first.json()["duplicate"] is False
    assert (job["status"], job["title"], job["priority"], job["source_name"]) == (
        "pending",
        "North Q1",
        3,
        "north.csv",
    )
    again = client.post(
        "/v1/jobs", files={"file": ("copy.csv", content, "text/csv")}, headers=AS_OPERATOR
    )
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["job"]["job_id"] == job["job_id"]
    listed = client.get("/v1/jobs", headers=AS_VIEWER).json()
    assert [j["job_id"] for j in listed["items"]] == [job["job_id"]]


@pytest.mark.parametrize(
    ("name", "content", "form", "status", "code", "needle"),
    [
        ("data.xlsx", b"PK\x03\x04", {}, 415, "not_csv", "only .csv files"),
        ("data.csv", b"\x89PNG\r\n\x1a\n\x00\x00", {}, 415, "not_csv", "binary content"),
        ("data.csv", b"", {}, 400, "invalid_csv", "empty"),
        (
            "data.csv",
            b"order_id,quantity\n1,2\n",
            {"dataset": "sales"},
            400,
            "invalid_csv",
            "missing required",
        ),
        ("data.csv", b"order_id,quantity\n1,2\n", {}, 400, "invalid_csv", "fits no dataset"),
        ("data.csv", b"\xff\xfeo\x00r\x00", {}, 415, "not_csv", "binary"),
        ("data.csv", b"a\xff,b\n", {}, 400, "invalid_csv", "not UTF-8"),
        ("data.csv", b"x\n", {"dataset": "invoices"}, 400, "unknown_dataset", "invoices"),
        ("data.csv", b"x\n", {"priority": "urgent"}, 422, "invalid_request", "priority"),
    ],
)
def test_bad_uploads_are_4xx(
    client: TestClient,
    name: str,
    content: bytes,
    form: dict[str, str],
    status: int,
    code: str,
    needle: str,
) -> None:
    files = {"file": (name, content, "application/octet-stream")}
    response = client.post("/v1/jobs", files=files, data=form, headers=AS_OPERATOR)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    assert needle in error["message"]


def test_an_upload_without_a_file_is_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", data={"dataset": "sales"}, headers=AS_OPERATOR)
    assert response.status_code == 422
    assert "file" in error_of(response)["message"]


def test_an_oversized_upload_is_413(settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    app = create_app(ops_settings(settings, ops_api_max_upload_mb=0.01), engine=engine)
    client = TestClient(app)
    big = csv_bytes(tmp_path, rows=400)  # about 25 kB: over 10 kB, under the framing slack
    response = client.post(
        "/v1/jobs", files={"file": ("big.csv", big, "text/csv")}, headers=AS_OPERATOR
    )
    assert response.status_code == 413
    assert "larger than 0.01 MB" in error_of(response)["message"]
    huge = b"x" * (200 * 1024)  # refused from its Content-Length, before it is read
    response = client.post(
        "/v1/jobs", files={"file": ("huge.csv", huge, "text/csv")}, headers=AS_OPERATOR
    )
    assert response.status_code == 413
    assert client.get("/v1/jobs", headers=AS_VIEWER).json()["total"] == 0


def test_active_uploads(client: TestClient, ids: dict[str, str]) -> None:
    body = client.get("/v1/uploads/active", headers=AS_VIEWER).json()
    assert (body["active_uploads"], body["pending_uploads"]) == (2, 3)
    first = body["recent_uploads"][0]
    assert first["status"] == "processing"
    assert {"rows_processed", "rows_total", "percent_complete", "elapsed_seconds"} <= set(first)
    bad = client.get("/v1/uploads/active", params={"recent_seconds": 1}, headers=AS_VIEWER)
    assert bad.status_code == 422


# ------------------------------------------------------------------------------ failed rows


def test_failed_rows_list_filters(client: TestClient, ids: dict[str, str]) -> None:
    def get(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/failed-rows", params=params, headers=AS_VIEWER)
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert get()["total"] == 3
    assert [r["row_number"] for r in get(job_id=ids["A"], sort="created_at")["items"]] == [2, 3]
    assert get(job_id=ids["A"], all="true")["total"] == 3
    assert get(job_id=ids["A"], status="loaded")["items"][0]["row_number"] == 4
    assert get(dataset="sales", sort="-job_id")["items"][0]["job_id"] == ids["C"]
    day_ago = (utcnow() - dt.timedelta(days=1)).isoformat()
    assert get(created_from=day_ago)["total"] == 3  # the date range filter
    assert get(created_to=day_ago)["total"] == 0
    for params in (
        {"job_id": "x"}, {"sort": "reason"}, {"status": "lost"}, {"limit": 501},
        {"created_from": "yesterday"},
    ):  # fmt: skip
        response = client.get("/v1/failed-rows", params=params, headers=AS_VIEWER)
        assert response.status_code == 422, params
        assert error_of(response)["code"] == "invalid_request"
    backwards = {"created_from": "2026-01-02T00:00:00Z", "created_to": "2026-01-01T00:00:00Z"}
    response = client.get("/v1/failed-rows", params=backwards, headers=AS_VIEWER)
    assert (response.status_code, error_of(response)["code"]) == (400, "bad_filter")
    assert "created_from must be before created_to" in error_of(response)["message"]


def test_failed_row_retry_errors(client: TestClient, ids: dict[str, str]) -> None:
    assert client.post("/v1/failed-rows/0/retry", headers=AS_OPERATOR).status_code == 422
    assert client.post("/v1/failed-rows/abc/retry", headers=AS_OPERATOR).status_code == 422
    missing = client.post("/v1/failed-rows/999999/retry", headers=AS_OPERATOR)
    assert (missing.status_code, error_of(missing)["code"]) == (404, "row_not_found")
    bad_fix = client.post(
        "/v1/failed-rows/1/retry", json={"fixes": {"Bad Column!": "x"}}, headers=AS_OPERATOR
    )
    assert bad_fix.status_code == 422
    c_row = rm.list_failed_rows(client.app.state.engine, rm.FailedRowFilters(job_id=ids["C"]))
    skipped = client.post(f"/v1/failed-rows/{c_row.items[0].id}/retry", headers=AS_OPERATOR)
    assert skipped.status_code == 200
    assert skipped.json()["status"] == "skipped"
    assert "retry the job itself" in skipped.json()["message"]


# ------------------------------------------------------------------------------ metrics, health


def test_metrics_match_the_hand_computed_fixture(client: TestClient, ids: dict[str, str]) -> None:
    body = client.get("/v1/metrics", headers=AS_VIEWER).json()
    for key, value in EXPECTED.items():
        assert body[key] == value, key
    assert [s["job_id"] for s in body["stuck_jobs"]] == [ids["E"]]
    assert body["stuck_jobs"][0]["dagster_run_url"] == f"{UI}/runs/run-e"
    assert [f["job_id"] for f in body["recent_failures"]] == [ids["C"], ids["D"]]
    assert body["recent_failures"][0]["error_message"] == C_ERROR
    # Over the last hour B completed and C failed (50 % > 10 %), E is stuck; no daemon rule
    # without DAGSTER_HOME. The alerts use the thresholds of the settings.
    assert {a["rule"]: a["severity"] for a in body["alerts"]} == {
        "failure_rate": "critical",
        "stuck_jobs": "warning",
    }
    stuck = next(a for a in body["alerts"] if a["rule"] == "stuck_jobs")
    assert ids["E"] in stuck["message"]
    hour = client.get("/v1/metrics", params={"window_seconds": 3600}, headers=AS_VIEWER).json()
    assert (hour["completed_in_window"], hour["failed_in_window"]) == (1, 1)  # B and C
    bad = client.get("/v1/metrics", params={"window_seconds": 0}, headers=AS_VIEWER)
    assert bad.status_code == 422


def test_prometheus_text(client: TestClient, ids: dict[str, str]) -> None:
    """/metrics parses with prometheus_client's own parser, with the documented families,
    labels and values, and histograms of the jobs completed in the last hour."""
    response = client.get("/metrics", headers=AS_VIEWER)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    for (name, labels), value in {
        ("etl_jobs", (("status", "failed"),)): 2,
        ("etl_jobs", (("status", "pending"),)): 3,
        ("etl_jobs_pending", (("priority", "0"), ("state", "waiting"))): 1,
        ("etl_jobs_stuck", ()): 1,
        ("etl_job_retries", ()): 6,
        ("etl_jobs_failed_window", (("window_seconds", "3600"),)): 1,
        ("etl_job_failure_ratio", (("window_seconds", "3600"),)): 0.5,
        ("etl_quarantined_rows_open", ()): 3,
        ("etl_health_score", ()): 70,
        ("etl_alert_firing", (("rule", "failure_rate"), ("severity", "critical"))): 1,
        ("etl_alert_firing", (("rule", "stuck_jobs"), ("severity", "warning"))): 1,
        # B completed in the last hour (A two hours ago): one job in the histograms.
        ("etl_job_duration_seconds_count", ()): 1,
        ("etl_job_rows_loaded_count", ()): 1,
        ("etl_job_rows_loaded_bucket", (("le", "+Inf"),)): 1,
    }.items():
        assert samples.get((name, labels)) == value, (name, labels)
    assert families["etl_health_score"].type == "gauge"
    assert families["etl_job_duration_seconds"].type == "histogram"
    assert families["etl_job_rows_loaded"].type == "histogram"
    documented = (Path(__file__).parents[1] / "docs" / "monitoring.md").read_text()
    for name in families:
        assert f"`{name}`" in documented, f"{name} is not in docs/monitoring.md"


def test_activity_series(client: TestClient, ids: dict[str, str]) -> None:
    body = client.get("/v1/activity", headers=AS_VIEWER).json()
    assert len(body["buckets"]) == 144
    assert sum(b["jobs_completed"] for b in body["buckets"]) == 2
    bad = client.get(
        "/v1/activity", params={"window_seconds": 600, "bucket_seconds": 3600}, headers=AS_VIEWER
    )
    assert (bad.status_code, error_of(bad)["code"]) == (400, "bad_filter")


def test_readyz_scores_stuck_jobs_and_failures(client: TestClient, ids: dict[str, str]) -> None:
    body = client.get("/readyz").json()
    assert body["ready"] is True  # stuck jobs and failures degrade, they do not stop the API
    assert body["score"] == 100 - 10 - 20  # one stuck job; 1 of 2 finished in the hour failed
    assert any("1 processing job(s) without a heartbeat" in r for r in body["reasons"])
    assert any("1 of 2 jobs finished in the last hour failed" in r for r in body["reasons"])
    # the reasons are the alerts' messages: one rule, one wording, in /readyz and /v1/metrics
    assert [a["message"] for a in body["alerts"]] == body["reasons"]
    assert {a["rule"] for a in body["alerts"]} == {"failure_rate", "stuck_jobs"}
    daemon = next(c for c in body["checks"] if c["name"] == "daemon")
    assert daemon["ok"] is None


def test_readyz_and_metrics_follow_the_alert_settings(
    settings: Settings, engine: sa.Engine, ids: dict[str, str]
) -> None:
    """ALERT_FAILURE_RATE, ALERT_PENDING_THRESHOLD and STUCK_AFTER_SECONDS move the rules in
    /readyz and /v1/metrics alike."""
    changed = ops_settings(
        settings, alert_failure_rate=0.6, alert_pending_threshold=2, stuck_after_seconds=900
    )
    client = TestClient(create_app(changed, engine=engine))
    ready = client.get("/readyz").json()
    assert [a["rule"] for a in ready["alerts"]] == ["pending_queue"]  # 3 pending > 2
    assert ready["score"] == 100 - 10
    assert "3 jobs are pending (> 2)" in ready["reasons"][0]
    metrics = client.get("/v1/metrics", headers=AS_VIEWER).json()
    assert metrics["alerts"] == ready["alerts"]


def fake_instance(age_seconds: float | None) -> Any:
    beats = {}
    if age_seconds is not None:
        beats["SENSOR"] = SimpleNamespace(timestamp=utcnow().timestamp() - age_seconds)
    return SimpleNamespace(
        get_required_daemon_types=lambda: ["SENSOR"], get_daemon_heartbeats=lambda: beats
    )


@pytest.mark.parametrize(
    ("age", "status", "score"), [(5.0, 200, 100), (600.0, 503, 60), (None, 503, 60)]
)
def test_readyz_checks_the_daemon_heartbeat(
    settings: Settings, engine: sa.Engine, age: float | None, status: int, score: int
) -> None:
    app = create_app(
        ops_settings(settings), engine=engine, instance_factory=lambda: fake_instance(age)
    )
    response = TestClient(app).get("/readyz")
    assert response.status_code == status
    assert response.json()["score"] == score
    if status == 503:
        reason = response.json()["reasons"][0]
        seen = "never" if age is None else r"(\d+) s ago"
        expected = rf"no fresh heartbeat from the Dagster daemon\(s\) SENSOR \({seen}\)"
        match = re.match(expected, reason)
        assert match, reason
        if age is not None:  # read a moment after the fake beat: later on a loaded machine
            assert 599 <= int(match.group(1)) < 900, reason
        assert "`dagster-daemon run`" in reason
        [alert] = response.json()["alerts"]
        assert alert["rule"] == "daemon_heartbeat"
        metrics = TestClient(app).get("/v1/metrics", headers=AS_VIEWER).json()
        assert [a["rule"] for a in metrics["alerts"]] == ["daemon_heartbeat"]


def test_readyz_daemon_threshold_is_alert_daemon_stale_seconds(
    settings: Settings, engine: sa.Engine
) -> None:
    app = create_app(
        ops_settings(settings, alert_daemon_stale_seconds=900),
        engine=engine,
        instance_factory=lambda: fake_instance(600.0),
    )
    response = TestClient(app).get("/readyz")
    assert (response.status_code, response.json()["score"]) == (200, 100)
    assert "alert after 900 s" in response.json()["checks"][2]["detail"]


def test_readyz_when_the_instance_cannot_be_read(settings: Settings, engine: sa.Engine) -> None:
    def broken() -> Any:
        raise RuntimeError("storage password=hunter2 refused")

    client = TestClient(create_app(ops_settings(settings), engine=engine, instance_factory=broken))
    response = client.get("/readyz")
    assert (response.status_code, response.json()["score"]) == (503, 60)
    assert "cannot read the Dagster instance" in response.json()["reasons"][0]
    assert "hunter2" not in response.text
    metrics = client.get("/v1/metrics", headers=AS_VIEWER)  # the ledger rules still answer
    assert (metrics.status_code, metrics.json()["alerts"]) == (200, [])


def test_an_unmigrated_database_is_503_without_sql(settings: Settings, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    client = TestClient(create_app(ops_settings(settings), engine=engine))
    response = client.get("/v1/jobs", headers=AS_VIEWER)
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "database_unavailable"
    assert "SELECT" not in error["message"] and "jobs" not in error["message"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "run `etl db upgrade`" in ready.json()["reasons"][0]


def test_an_unreachable_database_is_503(settings: Settings) -> None:
    engine = create_engine("postgresql://etl:hunter2@127.0.0.1:9/etl")
    client = TestClient(create_app(ops_settings(settings), engine=engine))
    for path in ("/v1/metrics", "/readyz"):
        response = client.get(path, headers=AS_VIEWER)
        assert response.status_code == 503
        assert "hunter2" not in response.text and "127.0.0.1" not in response.text
    assert client.get("/readyz").json()["score"] == 0


def test_an_unexpected_error_is_a_generic_500_logged_with_its_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail SELECT * FROM jobs")

    monkeypatch.setattr(rm, "list_jobs", explode)
    with caplog.at_level(logging.ERROR, logger="etl_assets.ops.api"):
        response = client.get("/v1/jobs", headers=AS_VIEWER)
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert error["request_id"] in error["message"]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["request_id"] in caplog.text
    assert "secret detail" in caplog.text  # the server log has the cause


def test_unknown_routes_and_methods_are_json_errors(client: TestClient) -> None:
    missing = client.get("/v2/nothing", headers=AS_VIEWER)
    assert (missing.status_code, error_of(missing)["code"]) == (404, "not_found")
    wrong = client.delete("/v1/jobs", headers=AS_OPERATOR)
    assert (wrong.status_code, error_of(wrong)["code"]) == (405, "method_not_allowed")


# ------------------------------------------------------------------------------ end to end


def test_find_why_a_job_failed_retry_it_and_fix_a_row(
    platform: Platform, api: ReferenceApiServer, tmp_path: Path
) -> None:
    """An operator's path through the API alone: a job dead-lettered while the FX API was
    down shows in the metrics with its reason; once the API is back, a retry completes it;
    a quarantined row is fixed and loaded (not while the catalog API is down)."""
    client = TestClient(create_app(ops_settings(platform.settings), engine=platform.ledger.engine))
    api.faults.add(Fault("/fx", status=503))
    content = csv_bytes(tmp_path, rows=30, every=10, name="east.csv")  # 3 defective rows
    created = client.post(
        "/v1/jobs", files={"file": ("east.csv", content, "text/csv")}, headers=AS_OPERATOR
    )
    job_id = created.json()["job"]["job_id"]
    platform.run_all()

    [failure] = client.get("/v1/metrics", headers=AS_VIEWER).json()["recent_failures"]
    assert (failure["job_id"], failure["error_type"]) == (job_id, "transient_exhausted")
    assert "HTTP 503" in failure["error_message"]
    seen = client.get(f"/v1/jobs/{job_id}", headers=AS_OPERATOR).json()
    assert [a["outcome"] for a in seen["attempts"]] == ["failed"] * 3
    assert "HTTPError" in seen["job"]["error_traceback"]
    assert seen["dagster_run_url"].startswith(f"{UI}/runs/")

    api.faults.clear()
    retried = client.post(f"/v1/jobs/{job_id}/retry", headers=AS_OPERATOR)
    assert retried.json()["job"]["status"] == "pending"
    platform.run_all()
    done = client.get(f"/v1/jobs/{job_id}", headers=AS_VIEWER).json()
    assert done["job"]["status"] == "completed"
    assert done["progress"]["percent_complete"] == 100.0
    assert [a["outcome"] for a in done["attempts"]] == ["failed"] * 3 + ["succeeded"]

    rows = client.get("/v1/failed-rows", params={"job_id": job_id}, headers=AS_VIEWER).json()
    assert rows["total"] == 3
    quantity = next(r for r in rows["items"] if r["reason"].startswith("quantity"))
    fix = {"fixes": {"quantity": "2"}}
    api.faults.add(Fault("/catalog", status=503))  # FX rates of past dates are cached
    down = client.post(f"/v1/failed-rows/{quantity['id']}/retry", json=fix, headers=AS_OPERATOR)
    assert (down.status_code, error_of(down)["code"]) == (503, "enrichment_unavailable")
    assert error_of(down)["message"].startswith("the catalog API at ")  # as `etl failed-rows`
    assert "try again later" in error_of(down)["message"]
    api.faults.clear()
    fixed = client.post(f"/v1/failed-rows/{quantity['id']}/retry", json=fix, headers=AS_OPERATOR)
    assert fixed.status_code == 200, fixed.text
    assert (fixed.json()["status"], fixed.json()["retry_count"]) == ("loaded", 1)
    after = client.get(f"/v1/jobs/{job_id}", headers=AS_VIEWER).json()["job"]
    assert (after["rows_loaded"], after["rows_quarantined"]) == (28, 2)
    assert platform.facts(job_id) == 28


def test_docs_api_md_covers_every_endpoint(client: TestClient) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    paths = client.get("/openapi.json").json()["paths"]
    missing = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if f"`{method.upper()} {path}" not in docs
    ]
    assert missing == []


def test_the_access_log_has_request_ids_and_no_query_strings(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="etl_assets.ops.access"):
        response = client.get(f"/dashboard?token={VIEWER}")
    [line] = [r.getMessage() for r in caplog.records if r.name == "etl_assets.ops.access"]
    assert line.startswith("GET /dashboard -> 200 in ")
    assert response.headers["x-request-id"] in line
    assert VIEWER not in caplog.text


def test_etl_api_serves_until_stopped(sqlite_url: str, tmp_path: Path) -> None:
    """`etl api` as an operator starts it: uvicorn on the port, tokens from the environment."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": sqlite_url,
        "DATA_DIR": str(tmp_path / "data"),
        "OPS_API_VIEWER_TOKENS": VIEWER,
    }
    command = [sys.executable, "-m", "etl_assets.cli", "api", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):  # up to a minute on a loaded machine
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        listed = requests.get(f"{base}/v1/jobs", headers=AS_VIEWER, timeout=5)
        assert listed.json()["total"] == 0
        assert requests.get(f"{base}/v1/jobs", timeout=5).status_code == 401
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert f"ops API on http://127.0.0.1:{port}/v1" in output
    assert "GET /v1/jobs -> 401" in output  # the API's own access log
