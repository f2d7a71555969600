"""`etl api`: serve the ops HTTP API and its dashboard with uvicorn."""

from __future__ import annotations

import click

from etl_assets.config import Settings


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve without tokens: anyone who can reach the port is an operator. "
    "Only for a trusted, local machine.",
)
def api_command(host: str, port: int, insecure_no_auth: bool) -> None:
    """Serve the ops API (/v1, /metrics, /healthz, /readyz) and the dashboard (/dashboard).

    Needs OPS_API_VIEWER_TOKENS and/or OPS_API_OPERATOR_TOKENS; without any it refuses to
    start unless --insecure-no-auth is given.
    """
    import uvicorn

    from etl_assets.ops.api import auth_configured, create_app

    settings = Settings.from_env()
    if not auth_configured(settings) and not insecure_no_auth:
        raise click.ClickException(
            "no OPS_API_VIEWER_TOKENS or OPS_API_OPERATOR_TOKENS are set, so anyone could "
            "read and repair jobs. Set them (comma-separated tokens), or pass "
            "--insecure-no-auth on a trusted machine."
        )
    if insecure_no_auth:
        click.echo(
            "WARNING: --insecure-no-auth: every caller is an operator (retry, cancel, upload)",
            err=True,
        )
    app = create_app(settings, insecure_no_auth=insecure_no_auth, start_jobs_as_submitted=True)
    click.echo(f"ops API on http://{host}:{port}/v1, dashboard on http://{host}:{port}/dashboard")
    # The API logs each request itself (etl_assets.ops.access), without query strings:
    # uvicorn's access log would print the dashboard's ?token=.
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
