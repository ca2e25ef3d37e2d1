"""``crm preview KIND [--locale L]`` / ``crm preview --all``: render email kinds with their
sample context to ``var/preview/KIND.<locale>.html`` and ``.txt``, to check templates in a browser.
A kind with inline images (``EmailKind.preview_images``, e.g. the target report's chart) gets
them written beside the HTML as ``KIND.<locale>.<n>.png``, its ``cid:`` references pointed at
those files (a browser cannot resolve ``cid:`` outside an email).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

import typer

from crm_core.paths import var_dir
from tasks.mail.kinds import KINDS, UnknownEmailKind, get_kind
from tasks.mail.render import available_locales, render_email, resolve_locale


def write_preview(kind: str, locale: str, out_dir: Path) -> tuple[str, Path, Path]:
    """Render ``kind`` in ``locale`` with its sample context; returns (subject, html, txt paths)."""
    email_kind = get_kind(kind)
    rendered = render_email(kind, locale, email_kind.sample_context)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{kind}.{locale}.html"
    txt_path = out_dir / f"{kind}.{locale}.txt"
    html = rendered.html
    if email_kind.preview_images:
        for n, (cid, png) in enumerate(sorted(_images(email_kind.preview_images)(locale).items())):
            image = out_dir / f"{kind}.{locale}.{n}.png"
            image.write_bytes(png)
            html = html.replace(f'src="cid:{cid}"', f'src="{image.name}"')
    html_path.write_text(html, encoding="utf-8")
    txt_path.write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    return rendered.subject, html_path, txt_path


def _images(target: str) -> Callable[[str], dict[str, bytes]]:
    module, _, name = target.partition(":")
    return cast(Callable[[str], dict[str, bytes]], getattr(importlib.import_module(module), name))


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
