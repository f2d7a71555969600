"""The `etl` command line: schema, submissions, the ledger, settings and local helpers.

Human tables by default, `--json` for scripts. A database that cannot be reached, or one
that was never migrated, is reported in one line with what to do, never as a traceback.

`main` (the click group, in `cli.app`) names every command; the commands live in one module
per group or family, imported only when their command runs (`cli.app.COMMANDS`): `db`,
`submit`, `jobs`, `repair` (retry, cancel), `failed_rows`, `events`, `validate`, `monitor`
(watch, doctor), `admin` (config, reference-api, worker, prune, dagster-home) and `api`.
They never import this package's `__init__`. What they share (tables, JSON, settings,
`reports_errors`) is in `cli.output`.
"""

from etl_assets.cli.app import main

__all__ = ["main"]
