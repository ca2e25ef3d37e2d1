"""``create_app``: the FastAPI application behind the links in our emails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, PlainTextResponse

from crm_core.settings import Settings, get_settings
from crm_db.session import make_engine
from crm_db.types import utcnow
from crm_web import (
    care_feedback,
    revisit_list,
    revisit_outcome,
    survey_answer,
    unsubscribe,
    weekly_form,
)
from crm_web.context import Clock, WebContext
from crm_web.i18n import negotiate_locale
from crm_web.pages import Pages
from crm_web.rate_limit import ClientLimiter
from crm_web.security import SecurityHeadersMiddleware


def create_app(
    engine: Engine | None = None, settings: Settings | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The web app on ``engine`` (default: one for ``settings.database_url``, disposed at
    shutdown). ``clock`` returns the current aware UTC time; tests pass their own."""
    settings = settings or get_settings()
    owns_engine = engine is None
    web = WebContext(
        engine=engine if engine is not None else make_engine(settings.database_url, create=False),
        settings=settings,
        # Read once: in demo mode this warns about the generated key, once, at start-up.
        signing_key=settings.signing_key(),
        clock=clock or utcnow,
        pages=Pages(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            web.engine.dispose()

    # A public site for email recipients: no API docs or schema to browse.
    app = FastAPI(
        title="crm-flows web", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.web = web
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(unsubscribe.router)
    app.include_router(revisit_outcome.router)
    app.include_router(care_feedback.router)
    app.include_router(revisit_list.router)
    app.include_router(survey_answer.router)
    app.include_router(weekly_form.router)
    # One brake per app: crm web is one process (see crm_web.rate_limit).
    app.state.survey_answer_limiter = ClientLimiter(
        requests=settings.web_answer_requests_per_minute
    )

    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    def healthz() -> str:
        return "ok"

    @app.exception_handler(StarletteHTTPException)
    async def error_page(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        # Our own page instead of FastAPI's JSON, in the visitor's language.
        locale = negotiate_locale(request.headers.get("accept-language"), settings.locale)
        response = web.pages.response("error.html", locale=locale, status_code=exc.status_code)
        if exc.headers:
            response.headers.update(exc.headers)  # e.g. Allow on 405
        return response

    return app
