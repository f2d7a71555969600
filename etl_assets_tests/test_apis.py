"""The enrichment clients: one call per distinct key, concurrency, rate limit, FX cache."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from etl_assets.reference_api import Fault, ReferenceApiServer
from etl_assets.resources import apis
from etl_assets.resources.apis import CatalogResource, FxRatesResource, RateLimiter


def fx(api: ReferenceApiServer, tmp_path: Path, **kwargs: object) -> FxRatesResource:
    return FxRatesResource(base_url=api.fx_url, cache_dir=str(tmp_path / "cache"), **kwargs)


def test_one_fx_call_per_distinct_date_whatever_the_rows(
    api: ReferenceApiServer, tmp_path: Path
) -> None:
    pairs = [("2024-01-05", c) for c in ("USD", "GBP", "EUR")] * 1000 + [("2024-01-08", "JPY")]
    rates = fx(api, tmp_path).rates(pairs, "EUR")
    assert api.faults.calls_to("/fx/") == 2  # two dates, however many rows and currencies
    assert len(rates) == 4
    eur = rates[rates["currency"] == "EUR"].iloc[0]
    assert (eur["fx_rate"], eur["fx_date"]) == (1.0, "2024-01-05")


def test_past_dates_are_cached_across_jobs_but_today_is_not(
    api: ReferenceApiServer, tmp_path: Path
) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    pairs = [("2024-01-05", "USD"), ("2024-01-06", "USD"), (today, "USD")]
    first = fx(api, tmp_path).rates(pairs, "EUR")
    assert api.faults.calls_to("/fx/") == 3
    second = fx(api, tmp_path).rates(pairs, "EUR")  # another job, another process
    assert api.faults.calls_to("/fx/") == 4  # only today's rate was asked again
    assert first.equals(second)
    assert (tmp_path / "cache" / "fx" / "EUR" / "2024-01-06.json").exists()


def test_a_failed_answer_is_not_cached(api: ReferenceApiServer, tmp_path: Path) -> None:
    api.faults.add(Fault("/fx/2024-01-05", status=503, count=1))
    with pytest.raises(apis.requests.HTTPError):
        fx(api, tmp_path, concurrency=1).rates([("2024-01-05", "USD")], "EUR")
    assert len(fx(api, tmp_path).rates([("2024-01-05", "USD")], "EUR")) == 1


def test_catalog_batches_concurrently_and_keeps_results(
    api: ReferenceApiServer,
) -> None:
    skus = [f"SKU-{n:04d}" for n in range(1, 951)] + ["SKU-9999"]
    catalog = CatalogResource(base_url=api.catalog_url, concurrency=4)
    products = catalog.products(skus * 3)
    assert api.faults.calls_to("/catalog/") == 10  # 951 distinct SKUs in batches of 100
    assert len(products) == 950
    assert sorted(products["sku"]) == sorted(skus[:-1])


def test_the_rate_limiter_spaces_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(apis.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(apis.time, "sleep", slept.append)
    limiter = RateLimiter(10)
    for _ in range(4):
        limiter.wait()
    assert [round(s, 3) for s in slept] == [0.1, 0.2, 0.3]  # the first call goes at once
    unlimited = RateLimiter(0)
    unlimited.wait()
    assert len(slept) == 3
