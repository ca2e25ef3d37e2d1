"""``crm web``: serve the public web app behind the links in emails (unsubscribe, ...)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import typer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_LOCAL_NAMES = ("localhost",)


def listen_address(public_base_url: str) -> tuple[str, int]:
    """Where ``crm web`` listens by default: where the links point, when that is this machine
    (the demo's http://127.0.0.1:8000, or any other local port), so moving
    ``CRM_PUBLIC_BASE_URL`` moves the server with it. A public address (https://crm.example.com)
    is a reverse proxy's: then 127.0.0.1:8000, which the proxy forwards to."""
    parts = urlsplit(public_base_url)
    host = parts.hostname or ""
    try:
        local = host in _LOCAL_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        return DEFAULT_HOST, DEFAULT_PORT
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return ("127.0.0.1" if host in _LOCAL_NAMES else host), port


def web(
    host: str | None = typer.Option(
        None,
        help="interface to listen on (default: CRM_PUBLIC_BASE_URL's when local, else 127.0.0.1)",
    ),
    port: int | None = typer.Option(
        None,
        min=1,
        max=65535,
        help="TCP port (default: CRM_PUBLIC_BASE_URL's when local, else 8000)",
    ),
) -> None:
    """Serve the web app with uvicorn. Put it behind a TLS reverse proxy whose public address
    is CRM_PUBLIC_BASE_URL (the links in emails point there)."""
    import uvicorn

    from crm_core.settings import get_settings
    from crm_web import access_log
    from crm_web.app import create_app

    settings = get_settings()
    default_host, default_port = listen_address(settings.public_base_url)
    host, port = host or default_host, port or default_port
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
