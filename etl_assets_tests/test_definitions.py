"""The code location loads, and its shape is the one DESIGN.md fixes."""

from __future__ import annotations

import dagster as dg
import pytest

from etl_assets.config import Settings
from etl_assets.definitions import build_definitions, defs


def test_the_module_level_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} == {
        "inbox_sensor",
        "dispatch_sensor",
        "job_run_failure_sensor",
        "reaper_sensor",
        "alerts_sensor",
        "downstream_sensor",
    }


def test_every_asset_is_partitioned_by_its_datasets_jobs_and_documented() -> None:
    graph = defs.resolve_asset_graph()
    sales_fact = dg.AssetKey(["sales", "sales_fact"])
    downstream = {  # warehouse-wide tables below the per-job graphs, and what they read
        dg.AssetKey("daily_sales"): {sales_fact},
        dg.AssetKey("customer_rfm"): {sales_fact},
        dg.AssetKey("stock_cover"): {
            dg.AssetKey(["inventory", "inventory_snapshots"]),
            sales_fact,
            dg.AssetKey("daily_sales"),
        },
    }
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key in downstream:
            assert node.partitions_def is None, key
            assert node.parent_keys == downstream[key], key
        else:
            dataset = key.path[0]
            wanted = dg.DynamicPartitionsDefinition(name=f"{dataset}_jobs")
            assert node.partitions_def == wanted, key
            assert node.group_name == dataset, key
        assert node.description, f"{key} has no description for the UI"
    assert graph.get(dg.AssetKey(["sales", "sales_fact"])).parent_keys == {
        dg.AssetKey(["sales", "source_rows"]),
        dg.AssetKey(["sales", "fx_rates"]),
        dg.AssetKey(["sales", "catalog_products"]),
    }


def test_a_dataset_without_enrichments_loads_straight_from_its_source() -> None:
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["customers", "customer_records"])).parent_keys == {
        dg.AssetKey(["customers", "source_rows"])
    }


def test_each_dataset_has_its_job_running_every_step_in_one_process() -> None:
    job = defs.resolve_job_def("sales_job")
    assert job.executor_def is dg.in_process_executor
    assert len(job.asset_layer.executable_asset_keys) == 4
    assert not job.asset_layer.asset_graph.asset_check_keys  # the checks run downstream
    customers = defs.resolve_job_def("customers_job")
    assert len(customers.asset_layer.executable_asset_keys) == 2


def test_secrets_reach_resources_as_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FX_API_TOKEN", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://etl:pw@db/etl")
    resources = build_definitions(Settings.from_env()).resources or {}
    fx_token = resources["fx_api"].api_token  # type: ignore[attr-defined]
    assert isinstance(fx_token, dg.EnvVar)
    assert fx_token.env_var_name == "FX_API_TOKEN"
    database_url = resources["ledger"].database_url  # type: ignore[attr-defined]
    assert isinstance(database_url, dg.EnvVar)
    assert resources["catalog_api"].api_token is None  # type: ignore[attr-defined]


def test_each_api_has_its_concurrency_pool() -> None:
    from pathlib import Path

    import yaml

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["sales", "fx_rates"])).pools == {"fx_api"}
    assert graph.get(dg.AssetKey(["sales", "catalog_products"])).pools == {"catalog_api"}
    config = yaml.safe_load((Path(__file__).parents[1] / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] >= 1


def test_the_job_retries_with_exponential_backoff_and_jitter() -> None:
    policy = defs.resolve_job_def("sales_job").op_retry_policy
    assert policy is not None
    assert (policy.max_retries, policy.backoff, policy.jitter) == (
        2,
        dg.Backoff.EXPONENTIAL,
        dg.Jitter.PLUS_MINUS,
    )
