"""``crm web``: serve the public web app behind the links in emails (unsubscribe, ...)."""

from __future__ import annotations

import typer


def web(
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 for all)"),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
) -> None:
    """Serve the web app with uvicorn. Put it behind a TLS reverse proxy whose public address
    is CRM_PUBLIC_BASE_URL (the links in emails point there)."""
    import uvicorn

    from crm_core.settings import get_settings
    from crm_web import access_log
    from crm_web.app import create_app

    settings = get_settings()
    app = create_app(settings=settings)
    # Config configures uvicorn's loggers when created, so the filter goes on after it.
    config = uvicorn.Config(app, host=host, port=port, server_header=False)
    access_log.install()
    typer.echo(
        f"crm web: listening on http://{host}:{port} "
        f"(links in emails point to {settings.public_base_url})"
    )
    uvicorn.Server(config).run()


def register(app: typer.Typer) -> None:
    app.command("web")(web)
