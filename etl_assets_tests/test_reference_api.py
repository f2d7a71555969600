"""The reference FX and catalog server: contracts, weekend rates and fault injection."""

from __future__ import annotations

import requests

from etl_assets.reference_api import Fault, ReferenceApiServer


def test_fx_rates_for_a_business_day(api: ReferenceApiServer) -> None:
    answer = requests.get(f"{api.fx_url}/2024-01-05", params={"base": "EUR"}, timeout=5).json()
    assert answer["base"] == "EUR"
    assert answer["date"] == "2024-01-05"
    assert {"USD", "GBP", "JPY"} <= set(answer["rates"])
    assert "EUR" not in answer["rates"]


def test_weekends_and_holidays_answer_with_the_last_published_rate(api: ReferenceApiServer) -> None:
    saturday = requests.get(f"{api.fx_url}/2024-01-06", timeout=5).json()
    friday = requests.get(f"{api.fx_url}/2024-01-05", timeout=5).json()
    assert saturday["date"] == "2024-01-05"
    assert saturday["rates"] == friday["rates"]
    new_year = requests.get(f"{api.fx_url}/2024-01-01", timeout=5).json()
    assert new_year["date"] == "2023-12-29"


def test_fx_before_1999_is_not_found(api: ReferenceApiServer) -> None:
    assert requests.get(f"{api.fx_url}/1998-12-31", timeout=5).status_code == 404


def test_catalog_batch_lookup(api: ReferenceApiServer) -> None:
    answer = requests.get(
        f"{api.catalog_url}/products", params={"skus": "SKU-0001,SKU-9999,nope"}, timeout=5
    ).json()
    assert [p["sku"] for p in answer["products"]] == ["SKU-0001"]
    assert answer["missing"] == ["SKU-9999", "nope"]
    one = requests.get(f"{api.catalog_url}/products/SKU-0002", timeout=5)
    assert one.json()["name"] == "Product 0002"


def test_faults_in_process_and_over_http(api: ReferenceApiServer) -> None:
    api.faults.add(Fault("/fx", status=503, count=2))
    statuses = [requests.get(f"{api.fx_url}/2024-01-05", timeout=5).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]

    body = {"path_prefix": "/catalog", "status": 429, "count": 1, "retry_after": 2}
    assert requests.post(f"{api.url}/_admin/faults", json=body, timeout=5).status_code == 201
    limited = requests.get(f"{api.catalog_url}/products?skus=SKU-0001", timeout=5)
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    stats = requests.get(f"{api.url}/_admin/stats", timeout=5).json()
    assert stats["calls"]["/fx/2024-01-05"] == 3
    assert requests.delete(f"{api.url}/_admin/faults", timeout=5).status_code == 200
    assert api.faults.calls_to("/fx") == 0
