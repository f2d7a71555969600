"""Packaging for the ETL job platform: the `etl_assets` code location and the `etl` command."""

from setuptools import find_packages, setup

setup(
    name="etl_assets",
    version="0.1.0",
    description="A Dagster asset-based ETL platform: CSV files in, jobs ledger, warehouse out.",
    packages=find_packages(exclude=["etl_assets_tests*"]),
    package_data={
        "etl_assets": ["migrations/*.py", "migrations/versions/*.py", "py.typed"],
        "etl_assets.ops": ["static/*.html"],  # the ops dashboard page
    },
    python_requires=">=3.11,<3.14",
    install_requires=[
        # The registry here has dagster 1.13.29 but no dagster-webserver above 1.13.27:
        # pin the whole Dagster set to versions that resolve together.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-postgres==0.29.27",
        # Warm run workers for the production profile (`etl worker`, CeleryRunLauncher).
        "dagster-celery==0.29.27",
        # Dagster already brings these; named because our own code imports them.
        "sqlalchemy>=2.0,<2.2",  # Core API with RETURNING and insert().on_conflict_*
        "alembic>=1.13,<2",  # schema migrations for the ledger and the warehouse
        "click>=8.1,<9",  # the `etl` command line
        "pyyaml>=6,<7",  # reads and writes dagster.yaml for `etl dagster-home`
        "pandas>=2.2,<4",  # transform and merge
        # Arrow-backed strings make pandas' string work ~10x faster and far smaller in memory;
        # its CSV reader/writer parse and format in C++ (COPY input in 0.2 s per 1M rows
        # instead of ~13 s with DataFrame.to_csv): docs/performance.md.
        "pyarrow>=15,<27",
        "requests>=2.31,<3",  # FX and catalog API clients
        # PostgreSQL driver: COPY via copy_expert; dagster-postgres uses it too.
        "psycopg2-binary>=2.9,<3",
        # The ops API (`etl api`): FastAPI on the starlette/uvicorn/pydantic Dagster brings,
        # for its OpenAPI description and validation; python-multipart parses CSV uploads.
        "fastapi>=0.115,<0.170",
        "python-multipart>=0.0.9,<0.1",
        "uvicorn>=0.30,<1",
        # /metrics in the Prometheus text format with real histograms (job duration, rows per
        # job), escaped and typed by the reference client instead of by hand; 0.20 has the
        # parser the tests check the output with, <1 for its stable collector API.
        "prometheus_client>=0.20,<1",
    ],
    extras_require={
        "dev": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",  # a hung daemon test fails instead of eating the CI budget
            "ruff>=0.6,<1",
            # Layer contracts (pyproject.toml): imports only downwards, no dataset named by
            # the generic code; checked by `make lint`.
            "import-linter>=2.1,<3",
            "mypy>=1.10,<2",
            "types-requests",
            "types-PyYAML",
            "httpx>=0.27,<0.29",  # FastAPI's TestClient for the ops API tests
            # The fuzz suite (test_fuzz_csv.py) imports it directly; schemathesis also brings it.
            "hypothesis>=6.100,<7",
            "schemathesis==4.32.5",  # property-based run over the ops API's OpenAPI description
            "selenium>=4.20,<5",  # clicks in the ops dashboard (Debian's chromium-driver)
        ],
    },
    entry_points={"console_scripts": ["etl=etl_assets.cli:main"]},
)
