"""Uploads that end wrong answer 4xx naming the file and the cause, never 500: the upload reads
the header with the same reader and limits as the run (csv_source)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_ops_api import AS_OPERATOR, client, error_of

__all__ = ["client"]  # the fixture, shared with test_ops_api

HEADER = b"order_id,order_date,customer_id,sku,quantity,unit_price,currency,store_id"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'order_id,"' + b"x" * 200_000 + b'"\n1\n', "column 2 has 200000 characters"),
        (b"order_id," + b",".join(b"c%d" % i for i in range(500)) + b"\n", "and 481 more"),
        (b'"order_id\n', "line 1 (the header): a quoted field is not closed"),
        (HEADER + b"," + b",".join(b"c%d" % i for i in range(2000)) + b"\n", "CSV_MAX_COLUMNS"),
    ],
)
def test_an_unreadable_header_is_400_naming_the_file(
    client: TestClient, content: bytes, needle: str
) -> None:
    files = {"file": ("orders.csv", content, "text/csv")}
    response = client.post("/v1/jobs", files=files, data={"dataset": "sales"}, headers=AS_OPERATOR)
    assert response.status_code == 400, response.text
    message = error_of(response)["message"]
    assert message.startswith("orders.csv: ") and needle in message
