"""The `etl` command line: schema, submissions, the ledger, settings and local helpers.

Human tables by default, `--json` for scripts. A database that cannot be reached, or one
that was never migrated, is reported in one line with what to do, never as a traceback.

`main` (the click group, in `cli.app`) gets every command here; the commands live in one
module per group or family and never import this package's `__init__`: `db`, `submit`,
`jobs`, `repair` (retry, cancel), `failed_rows`, `events`, `validate`, `monitor` (watch,
doctor), `admin` (config, reference-api, worker, prune, dagster-home) and `api`. What they
share (tables, JSON, settings, `reports_errors`) is in `cli.output`.
"""

from etl_assets.cli import (
    admin,
    api,
    db,
    events,
    failed_rows,
    jobs,
    monitor,
    repair,
    submit,
    validate,
)
from etl_assets.cli.app import main

main.add_command(db.db)
main.add_command(submit.submit)
main.add_command(jobs.jobs)
main.add_command(repair.retry)
main.add_command(repair.cancel)
main.add_command(failed_rows.failed_rows)
main.add_command(monitor.watch)
main.add_command(monitor.doctor)
main.add_command(admin.config_command)
main.add_command(admin.reference_api)
main.add_command(admin.worker)
main.add_command(admin.prune)
main.add_command(admin.dagster_home)
main.add_command(api.api_command)  # etl api: the ops HTTP API and dashboard (etl_assets/ops)
main.add_command(events.events)
main.add_command(validate.validate)

__all__ = ["main"]
