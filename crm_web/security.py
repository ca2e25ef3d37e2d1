"""Security headers on every response the app produces, error pages included."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'"

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    # No scripts, images or frames at all; only our inline CSS and forms posting back to us.
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    # The URL holds a bearer token: never send it on to another site.
    ("Referrer-Policy", "no-referrer"),
    # Pages show per-customer state; no shared or browser cache may keep them.
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Robots-Tag", "noindex, nofollow"),
)


class SecurityHeadersMiddleware:
    """Plain ASGI middleware (not ``BaseHTTPMiddleware``): it only edits the response start
    message, so bodies stream through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
