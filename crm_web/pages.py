"""Rendering of the HTML pages: one Jinja environment, autoescaped, strict about variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from crm_core.paths import PROJECT_ROOT
from crm_web.i18n import messages

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "web"


class Pages:
    """Renders ``templates/web`` pages in a locale. Templates compile once and stay cached
    (``auto_reload`` off: restart the server after editing them)."""

    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(directory),
            # Every page is HTML whatever its file name, so escape everything (select_autoescape
            # would miss names it does not know).
            autoescape=True,
            undefined=StrictUndefined,
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, *, locale: str, status_code: int = 200, **context: Any) -> str:
        template = self.environment.get_template(name)
        return template.render(
            locale=locale, t=messages(locale), status_code=status_code, **context
        )

    def response(
        self, name: str, *, locale: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        body = self.render(name, locale=locale, status_code=status_code, **context)
        return HTMLResponse(body, status_code=status_code)
