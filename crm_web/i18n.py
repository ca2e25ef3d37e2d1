"""Which language a page speaks, and the page texts (pure: no request or database objects).

Texts live in ``templates/web/i18n/<locale>.json`` so translators edit data, not code; every
catalog must hold the same keys (a test checks), and a missing key fails loudly at render time
because the templates use ``StrictUndefined``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from crm_core.paths import PROJECT_ROOT

SUPPORTED_LOCALES: tuple[str, ...] = ("zh-CN", "en")
CATALOG_DIR = PROJECT_ROOT / "templates" / "web" / "i18n"

# Browsers send many spellings of Chinese; all of them read the simplified-Chinese pages best.
_PRIMARY_TAGS = {"zh": "zh-CN", "en": "en"}


def supported_locale(tag: str | None) -> str | None:
    """``en-GB`` -> ``en``; ``zh``, ``zh-Hans-CN``, ``zh_cn`` -> ``zh-CN``; others -> ``None``."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return _PRIMARY_TAGS.get(primary)


def negotiate_locale(accept_language: str | None, default: str) -> str:
    """The best supported locale in an ``Accept-Language`` header (RFC 9110 q-values), else
    ``default``. Malformed entries are skipped rather than failing the page."""
    candidates: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        locale = supported_locale(tag)
        if locale is not None and quality > 0:
            # Highest quality first; the header's own order breaks ties.
            candidates.append((-quality, position, locale))
    return min(candidates)[2] if candidates else default


def page_locale(customer_locale: str | None, accept_language: str | None, default: str) -> str:
    """A known customer's own locale wins (the page then matches the email they clicked in);
    otherwise the browser's preference, otherwise the deployment default."""
    return supported_locale(customer_locale) or negotiate_locale(accept_language, default)


@lru_cache(maxsize=len(SUPPORTED_LOCALES))
def _load_catalog(locale: str, directory: Path) -> Mapping[str, str]:
    data = json.loads((directory / f"{locale}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{directory / locale}.json must be a flat object of strings")
    return MappingProxyType(data)


def messages(locale: str, directory: Path = CATALOG_DIR) -> Mapping[str, str]:
    """The page texts for ``locale`` (an unsupported locale gets the first supported one)."""
    if locale not in SUPPORTED_LOCALES:
        locale = SUPPORTED_LOCALES[0]
    return _load_catalog(locale, directory)
