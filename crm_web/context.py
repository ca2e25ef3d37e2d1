"""What every request handler needs, built once per app and handed out as a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from crm_core.settings import Settings
from crm_web.pages import Pages

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class WebContext:
    engine: Engine
    settings: Settings
    signing_key: bytes
    clock: Clock  # returns an aware UTC datetime; tests pass their own
    pages: Pages

    def locale_default(self) -> str:
        return self.settings.locale


async def web_context(request: Request) -> WebContext:
    # async although it awaits nothing: FastAPI runs a sync dependency in its thread pool, a
    # thread hop per request for one attribute read.
    context: WebContext = request.app.state.web
    return context


Web = Annotated[WebContext, Depends(web_context)]
