"""Render an email kind to (subject, text, HTML) for a recipient's locale.

Two Jinja environments, both ``StrictUndefined`` (a missing value is an error naming the variable,
never a blank in a customer's inbox):

* HTML: autoescaped for every template name (an explicit function, because ``select_autoescape``
  would skip names it does not know), CSS from ``templates/emails/email.css`` inlined into the
  template source ONCE when it is loaded, so rendering a message costs a Jinja render only;
* subject and text: no HTML escaping (a customer called ``A & B`` stays ``A & B``); the subject is
  forced onto one line, so customer data cannot produce a header break.

URLs pass the ``link`` filter (``tasks.mail.links.safe_url``) in both environments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    Undefined,
    UndefinedError,
    meta,
    pass_context,
)
from jinja2.runtime import Context

from crm_core.masking import mask_phone
from crm_core.paths import PROJECT_ROOT
from tasks.mail.kinds import get_kind
from tasks.mail.links import safe_url

TEMPLATE_ROOT: Path = PROJECT_ROOT / "templates" / "emails"
LOCALES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
DEFAULT_COMPANY_NAME = "CRM Flows"

# Keys the renderer supplies itself; templates may use them without the caller passing them.
_INJECTED = frozenset({"company_name", "html_lang", "_base_url", "_labels"})


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class TemplateContextError(ValueError):
    """The context lacks a value the templates need; ``variable`` names it."""

    def __init__(self, kind: str, locale: str, variable: str) -> None:
        super().__init__(f"email {kind!r} ({locale}): context is missing {variable!r}")
        self.kind = kind
        self.locale = locale
        self.variable = variable


# ---------------------------------------------------------------- text helpers (pure)

_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_subject(text: str) -> str:
    """One header-safe line: control characters and line breaks become spaces, whitespace runs
    collapse to one space, the ends are stripped."""
    return " ".join(_LINE_BREAKING.sub(" ", text).split())


def _clean_text_body(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def resolve_locale(locale: str | None, available: tuple[str, ...] = LOCALES) -> str:
    """``zh_cn`` -> ``zh-CN``, ``en-US`` -> ``en``; anything unknown -> ``zh-CN``."""
    if locale:
        wanted = locale.replace("_", "-").lower()
        by_lower = {loc.lower(): loc for loc in available}
        if wanted in by_lower:
            return by_lower[wanted]
        language = wanted.split("-")[0]
        for loc in available:
            if loc.lower().split("-")[0] == language:
                return loc
    return DEFAULT_LOCALE


# ---------------------------------------------------------------- CSS inlining at load time

_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_PLACEHOLDER = re.compile(r"<!--\ue000(\d+)\ue001-->|\ue000(\d+)\ue001")
_SKELETON = re.compile(r"<(/?[a-zA-Z][a-zA-Z0-9]*)|\ue000(\d+)\ue001")


def _skeleton(html: str) -> list[str]:
    """Element tags and template-tag placeholders in document order: if the HTML parser moved,
    added or dropped anything (foster-parenting, implied <tbody>), the skeletons differ."""
    return [m.group(1).lower() if m.group(1) else m.group(2) for m in _SKELETON.finditer(html)]


def inline_template_css(source: str, css: str) -> str:
    """Inline ``css`` into a Jinja HTML template's source, keeping every Jinja tag in place.

    Tags are swapped for placeholders the HTML parser leaves alone (expressions become text,
    statements become comments), the markup is inlined, then the tags are put back. If the
    parser moved anything (e.g. a loop tag directly inside ``<table>`` without ``<tbody>``), the
    markup skeletons differ and this raises instead of corrupting the template."""
    tags: list[str] = []

    def protect(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        index = len(tags) - 1
        if match.group(0).startswith("{{"):
            return f"\ue000{index}\ue001"
        return f"<!--\ue000{index}\ue001-->"

    protected = _JINJA_TAG.sub(protect, source)
    if "<html" in protected.lower():
        inlined = css_inline.CSSInliner(extra_css=css).inline(protected)
    else:
        inlined = css_inline.inline_fragment(protected, css)
    before, after = _skeleton(protected), _skeleton(inlined)
    if before != after:
        at = next(
            (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
            min(len(before), len(after)),
        )
        raise TemplateError(
            "CSS inlining moved template tags or markup (write <tbody>/<tr> explicitly and keep "
            f"loops and text inside cells): expected {before[at : at + 4]}, "
            f"got {after[at : at + 4]}"
        )
    return _PLACEHOLDER.sub(lambda m: tags[int(m.group(1) or m.group(2))], inlined)


class _InliningLoader(BaseLoader):
    def __init__(self, root: Path, css: str) -> None:
        self._files = FileSystemLoader(str(root))
        self._css = css

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self._files.get_source(environment, template)
        if template.endswith(".html"):
            source = inline_template_css(source, self._css)
        return source, filename, uptodate


# ---------------------------------------------------------------- filters


def _defined(value: Any) -> Any:
    # Filters receive a missing value as an Undefined object instead of raising; make it raise
    # (StrictUndefined) so the error names the variable rather than failing inside the filter.
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


@pass_context
def _link(context: Context, url: Any) -> str:
    return safe_url(_defined(url), context["_base_url"])


@pass_context
def _label(context: Context, value: Any, group: str) -> Any:
    if _defined(value) is None:
        return None
    labels: dict[str, dict[str, str]] = context["_labels"]
    return labels.get(group, {}).get(str(value), value)


def _pct(value: float | int | None) -> str:
    if _defined(value) is None:
        return "—"
    return f"{value:+.1f}%"


def _phone(value: str | None) -> str:
    """Masked whatever the caller passed (already-masked values are kept as they are)."""
    if not _defined(value):
        return "—"
    text = str(value)
    return text if "*" in text else mask_phone(text)


def _dash(value: Any) -> Any:
    return "—" if _defined(value) is None or value == "" else value


def _finalize(value: Any) -> Any:
    # ``None`` must not print as the word "None" in a customer's email.
    return "" if value is None else value


def _environment(html: bool, root: Path) -> Environment:
    loader: BaseLoader
    if html:
        loader = _InliningLoader(root, (root / "email.css").read_text(encoding="utf-8"))
    else:
        loader = FileSystemLoader(str(root))
    env = Environment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=(lambda _name: True) if html else False,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(link=_link, label=_label, pct=_pct, phone=_phone, dash=_dash)
    return env


@dataclass(frozen=True, slots=True)
class _CompiledKind:
    subject: Template
    text: Template
    html: Template
    required: frozenset[str]


def _undeclared(env: Environment, name: str) -> set[str]:
    loader = env.loader
    assert loader is not None
    source = loader.get_source(env, name)[0]
    ast = env.parse(source)
    names = set(meta.find_undeclared_variables(ast))
    for parent in meta.find_referenced_templates(ast):
        if parent is not None:
            names |= _undeclared(env, parent)
    return names


@lru_cache(maxsize=4)
def _environments(root: Path) -> tuple[Environment, Environment]:
    return _environment(False, root), _environment(True, root)


@lru_cache(maxsize=4)
def _labels(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    data: dict[str, dict[str, dict[str, str]]] = json.loads(
        (root / "labels.json").read_text(encoding="utf-8")
    )
    return data


@lru_cache(maxsize=64)
def available_locales(kind: str, root: Path = TEMPLATE_ROOT) -> tuple[str, ...]:
    return tuple(loc for loc in LOCALES if (root / kind / loc).is_dir())


@lru_cache(maxsize=64)
def _compiled(kind: str, locale: str, root: Path) -> _CompiledKind:
    text_env, html_env = _environments(root)
    prefix = f"{kind}/{locale}/"
    required: set[str] = set()
    for env, part in ((text_env, "subject.txt"), (text_env, "body.txt"), (html_env, "body.html")):
        required |= _undeclared(env, prefix + part)
    return _CompiledKind(
        subject=text_env.get_template(prefix + "subject.txt"),
        text=text_env.get_template(prefix + "body.txt"),
        html=html_env.get_template(prefix + "body.html"),
        required=frozenset(required - _INJECTED - set(text_env.globals)),
    )


def required_variables(kind: str, locale: str = DEFAULT_LOCALE) -> frozenset[str]:
    """Top-level context keys the kind's templates need (renderer-supplied keys excluded)."""
    get_kind(kind)
    loc = resolve_locale(locale, available_locales(kind))
    return _compiled(kind, loc, TEMPLATE_ROOT).required


_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined|has no (?:attribute|element) '?([^']+?)'?$")


def _undefined_name(exc: UndefinedError) -> str:
    match = _UNDEFINED_NAME.search(str(exc.message or ""))
    if match is None:
        return str(exc.message)
    return match.group(1) or match.group(2)


# Set in build worker processes (``tasks.mail.build``) to the delivering parent's values,
# so a worker renders exactly what the parent would even if its environment differs.
_pinned_defaults: tuple[str, str] | None = None


def pin_settings_defaults(company_name: str, public_base_url: str) -> None:
    """Use these instead of the settings for the company name and default base URL."""
    global _pinned_defaults
    _pinned_defaults = (company_name, public_base_url)


def _settings_defaults() -> tuple[str, str]:
    if _pinned_defaults is not None:
        return _pinned_defaults
    from crm_core.settings import get_settings

    settings = get_settings()
    company = getattr(settings, "company_name", None) or DEFAULT_COMPANY_NAME
    return str(company), settings.public_base_url


def render_email(
    kind: str,
    locale: str,
    context: Mapping[str, Any],
    *,
    base_url: str | None = None,
) -> RenderedEmail:
    """Render ``kind`` for ``locale`` (falls back to zh-CN) with ``context``.

    ``base_url`` is the public base URL that non-https links must live under (default: the
    ``public_base_url`` setting). Raises ``TemplateContextError`` naming a missing variable,
    ``UnknownEmailKind`` and ``tasks.mail.links.UnsafeURL`` for a link that is not allowed."""
    get_kind(kind)
    loc = resolve_locale(locale, available_locales(kind))
    compiled = _compiled(kind, loc, TEMPLATE_ROOT)
    missing = compiled.required.difference(context)
    if missing:
        raise TemplateContextError(kind, loc, sorted(missing)[0])
    company, default_base = _settings_defaults()
    values: dict[str, Any] = {"company_name": company}
    values.update(context)
    values["html_lang"] = loc
    values["_base_url"] = base_url if base_url is not None else default_base
    values["_labels"] = _labels(TEMPLATE_ROOT).get(loc, {})
    try:
        subject = clean_subject(compiled.subject.render(values))
        text = _clean_text_body(compiled.text.render(values))
        html = compiled.html.render(values)
    except UndefinedError as exc:
        raise TemplateContextError(kind, loc, _undefined_name(exc)) from exc
    return RenderedEmail(subject=subject, text=text, html=html)
