"""The ops API's guards: request bodies bounded on every route (with and without
Content-Length) and write tokens checked before a body is read, upload names and headers that
are refused with a 4xx (never a 500), and the security headers on every response."""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from ops_seed import free_port

from etl_assets.config import Settings
from etl_assets.datasets.samples import sales_frame, write_sales_csv
from etl_assets.db import create_engine
from etl_assets.ops.api import create_app
from etl_assets.ops.api.security import dashboard_html

VIEWER, OPERATOR = "viewer-secret-1", "operator-secret-1"
AS_VIEWER = {"Authorization": f"Bearer {VIEWER}"}
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR}"}
JOB_ID = "01JD3S6S8F6Q2W5N1B7C9XKZ4M"  # well-formed; no job has it
BODY_KB = 1
UPLOAD_MB = 0.01  # 10 KB, plus 64 KB of multipart slack


@pytest.fixture
def guarded_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return dataclasses.replace(
        Settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url).resolved(),
        ops_api_viewer_tokens=VIEWER,
        ops_api_operator_tokens=OPERATOR,
        ops_api_max_body_kb=BODY_KB,
        ops_api_max_upload_mb=UPLOAD_MB,
    )


@pytest.fixture
def engine(guarded_settings: Settings) -> Iterator[sa.Engine]:
    engine = create_engine(guarded_settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(guarded_settings: Settings, engine: sa.Engine) -> Iterator[TestClient]:
    app = create_app(guarded_settings, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def server(guarded_settings: Settings, engine: sa.Engine) -> Iterator[tuple[str, int]]:
    """The app under uvicorn on a free port, for requests only a raw socket can make."""
    port = free_port()
    config = uvicorn.Config(
        create_app(guarded_settings, engine=engine), host="127.0.0.1", port=port, log_level="error"
    )
    serving = uvicorn.Server(config)
    thread = threading.Thread(target=serving.run, daemon=True)
    thread.start()
    for _ in range(6000):  # until it listens (bounded; no timing is asserted)
        if serving.started:
            break
        threading.Event().wait(0.01)
    assert serving.started
    yield "127.0.0.1", port
    serving.should_exit = True
    thread.join(timeout=30)


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


# ------------------------------------------------------------------------------ body limits


def test_a_json_body_over_the_limit_is_413_from_its_content_length(client: TestClient) -> None:
    body = b'{"priority": 1, "pad": "' + b"x" * (BODY_KB * 1024) + b'"}'
    response = client.post(
        f"/v1/jobs/{JOB_ID}/retry",
        content=body,
        headers={**AS_OPERATOR, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    error = error_of(response)
    assert (error["code"], error["message"]) == (
        "body_too_large",
        f"the request body is larger than {BODY_KB} KB",
    )
    # Under the limit the same route answers as usual (the job does not exist).
    small = client.post(f"/v1/jobs/{JOB_ID}/retry", json={"priority": 1}, headers=AS_OPERATOR)
    assert small.status_code == 404


def test_a_chunked_json_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"fixes": {"currency": "'
        for _ in range(4):
            yield b"x" * 1024
        yield b'"}}'

    response = client.post(
        "/v1/failed-rows/1/retry",
        content=chunks(),
        headers={**AS_OPERATOR, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"


def test_a_read_of_the_upload_path_has_the_small_limit(client: TestClient) -> None:
    """GET /v1/jobs shares its path with the upload but not the upload's limit."""
    response = client.request(
        "GET", "/v1/jobs", content=b"x" * (BODY_KB * 1024 + 1), headers=AS_VIEWER
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "body_too_large"
    assert client.get("/v1/jobs", headers=AS_VIEWER).status_code == 200


def test_a_body_field_the_description_does_not_name_is_422(client: TestClient) -> None:
    """additionalProperties is false in the description, and the server holds to it."""
    response = client.post(
        f"/v1/jobs/{JOB_ID}/retry", json={"priority": 1, "prio": 2}, headers=AS_OPERATOR
    )
    assert response.status_code == 422
    fixes = {"fixes": {"Not A Column": "x"}}
    assert (
        client.post("/v1/failed-rows/1/retry", json=fixes, headers=AS_OPERATOR).status_code == 422
    )


def test_an_upload_over_the_limit_is_413_from_its_content_length(client: TestClient) -> None:
    huge = b"x" * (200 * 1024)
    response = client.post(
        "/v1/jobs", files={"file": ("huge.csv", huge, "text/csv")}, headers=AS_OPERATOR
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "file_too_large"


def test_a_write_without_an_operator_token_is_refused_before_its_body(
    client: TestClient,
) -> None:
    body = b"x" * (200 * 1024)
    no_token = client.post("/v1/jobs", content=body, headers={"Content-Type": "text/csv"})
    assert no_token.status_code == 413  # a declared size over the limit is refused first
    no_token = client.post(f"/v1/jobs/{JOB_ID}/cancel", content=b"{}")
    assert (no_token.status_code, error_of(no_token)["code"]) == (401, "unauthorized")
    assert no_token.headers["www-authenticate"] == "Bearer"
    viewer = client.post(f"/v1/jobs/{JOB_ID}/cancel", headers=AS_VIEWER)
    assert (viewer.status_code, error_of(viewer)["code"]) == (403, "forbidden")
    # Unknown routes and methods are still the router's answers, not the guard's.
    assert client.post("/v2/nothing").status_code == 404
    assert client.delete("/v1/jobs").status_code == 405


def _raw_request(address: tuple[str, int], head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send `head` and then the chunks (chunked encoding, never terminated), stopping when the
    server closes; return what the server answered. The client never ends its body: any
    answer it gets was given before the server read the whole body."""
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what we test for
        answer = b""
        try:
            while block := sock.recv(65536):
                answer += block
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        except ConnectionResetError:
            pass
    return answer


def _upload_head(port: int, headers: dict[str, str]) -> bytes:
    lines = [
        "POST /v1/jobs HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: multipart/form-data; boundary=XYZ",
        "Transfer-Encoding: chunked",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_chunked_upload_without_a_token_is_401_before_its_body(
    server: tuple[str, int],
) -> None:
    answer = _raw_request(server, _upload_head(server[1], {}), iter(()))  # headers only
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"code":"unauthorized"' in answer


def test_a_chunked_upload_over_the_limit_is_413_while_it_arrives(
    server: tuple[str, int],
) -> None:
    def body() -> Iterator[bytes]:
        yield (
            b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\norder_id\r\n"
        )
        for _ in range(400):  # 4 MB, far past 74 KB; the server stops reading long before
            yield b"1\r\n" * 5000

    answer = _raw_request(server, _upload_head(server[1], AS_OPERATOR), body())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"file_too_large"' in answer


# ------------------------------------------------------------------------------ uploads


def test_a_long_upload_name_keeps_its_csv_suffix(client: TestClient, tmp_path: Path) -> None:
    frame = sales_frame(3, seed=3, order_prefix="LONG")
    content = write_sales_csv(tmp_path / "long.csv", frame).read_bytes()
    name = "n" * 300 + ".csv"
    response = client.post(
        "/v1/jobs", files={"file": (name, content, "text/csv")}, headers=AS_OPERATOR
    )
    assert response.status_code == 201, response.text
    source = response.json()["job"]["source_name"]
    assert len(source) == 200 and source.endswith(".csv")


def test_a_header_field_past_the_csv_field_limit_is_400(
    guarded_settings: Settings, engine: sa.Engine
) -> None:
    roomy = dataclasses.replace(guarded_settings, ops_api_max_upload_mb=1.0)
    content = b"order_id," + b"x" * (200 * 1024) + b"\n1,2\n"  # over csv's 128 KB per field
    with TestClient(create_app(roomy, engine=engine), raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/jobs",
            files={"file": ("wide.csv", content, "text/csv")},
            data={"dataset": "sales"},
            headers=AS_OPERATOR,
        )
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "invalid_csv"
    assert "wide.csv" in error["message"]


# ------------------------------------------------------------------------------ headers


@pytest.mark.parametrize(
    "path", ["/dashboard", "/healthz", "/v1/jobs", "/nothing", "/openapi.json"]
)
def test_every_response_sends_the_security_headers(client: TestClient, path: str) -> None:
    headers = client.get(path).headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert not re.search(r"https?:|\*|'unsafe-", headers["content-security-policy"])


def test_the_policy_allows_exactly_the_dashboards_inline_code(client: TestClient) -> None:
    import base64
    import hashlib

    policy = client.get("/dashboard").headers["content-security-policy"]
    page = dashboard_html()
    for tag in ("script", "style"):
        [body] = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert " style=" not in page  # inline style attributes would be blocked


def test_docs_pages_that_load_a_cdn_are_off_and_openapi_stays(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "ETL ops API"
