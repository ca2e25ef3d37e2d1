"""``crm preview KIND [--locale L]`` / ``crm preview --all``: render email kinds with their
sample context to ``var/preview/KIND.<locale>.html`` and ``.txt``, to check templates in a browser.
"""

from __future__ import annotations

from pathlib import Path

import typer

from crm_core.paths import var_dir
from tasks.mail.kinds import KINDS, UnknownEmailKind, get_kind
from tasks.mail.render import available_locales, render_email, resolve_locale


def write_preview(kind: str, locale: str, out_dir: Path) -> tuple[str, Path, Path]:
    """Render ``kind`` in ``locale`` with its sample context; returns (subject, html, txt paths)."""
    rendered = render_email(kind, locale, get_kind(kind).sample_context)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{kind}.{locale}.html"
    txt_path = out_dir / f"{kind}.{locale}.txt"
    html_path.write_text(rendered.html, encoding="utf-8")
    txt_path.write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    return rendered.subject, html_path, txt_path


def preview(
    kind: str | None = typer.Argument(None, help=f"email kind: {', '.join(sorted(KINDS))}"),
    locale: str | None = typer.Option(None, "--locale", "-l", help="zh-CN or en (default: both)"),
    all_kinds: bool = typer.Option(False, "--all", help="render every kind"),
) -> None:
    """Render email kinds with their sample context to var/preview/ (HTML and text)."""
    if all_kinds == (kind is not None):
        raise typer.BadParameter("give a KIND or --all (not both)")
    kinds = sorted(KINDS) if all_kinds else [str(kind)]
    out_dir = var_dir() / "preview"
    for name in kinds:
        try:
            get_kind(name)
        except UnknownEmailKind as exc:
            raise typer.BadParameter(str(exc)) from None
        available = available_locales(name)
        locales = [resolve_locale(locale, available)] if locale else list(available)
        for loc in locales:
            subject, html_path, txt_path = write_preview(name, loc, out_dir)
            typer.echo(f"{name} [{loc}] subject: {subject}")
            typer.echo(f"  {html_path}")
            typer.echo(f"  {txt_path}")


def register(app: typer.Typer) -> None:
    app.command("preview")(preview)
