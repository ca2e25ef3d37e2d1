"""Pure locale rules and the page text catalogs."""

from __future__ import annotations

import json
import re

import pytest

from crm_web.i18n import (
    CATALOG_DIR,
    SUPPORTED_LOCALES,
    messages,
    negotiate_locale,
    page_locale,
    supported_locale,
)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en", "en"),
        ("en-GB", "en"),
        ("EN_us", "en"),
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh-Hans-CN", "zh-CN"),
        ("zh_TW", "zh-CN"),
        ("fr", None),
        ("", None),
        (None, None),
        ("*", None),
    ],
)
def test_supported_locale(tag: str | None, expected: str | None) -> None:
    assert supported_locale(tag) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("fr-FR, en;q=0.5, zh;q=0.7", "zh-CN"),  # highest q wins, not first listed
        ("en;q=0.5, zh;q=0.5", "en"),  # a tie goes to the header's order
        ("de, fr", "default"),
        ("en;q=0", "default"),  # q=0 means "not acceptable"
        ("en;q=abc, zh;q=0.1", "zh-CN"),  # malformed q counts as unacceptable
        ("", "default"),
        (None, "default"),
        (";;,,", "default"),
    ],
)
def test_negotiate_locale(header: str | None, expected: str) -> None:
    assert negotiate_locale(header, "default") == expected


def test_customer_locale_first_then_browser_then_default() -> None:
    assert page_locale("en", "zh-CN", "zh-CN") == "en"
    assert page_locale("xx", "en", "zh-CN") == "en"
    assert page_locale(None, None, "zh-CN") == "zh-CN"


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    catalogs = {
        locale: json.loads((CATALOG_DIR / f"{locale}.json").read_text(encoding="utf-8"))
        for locale in SUPPORTED_LOCALES
    }
    keys = {locale: set(catalog) for locale, catalog in catalogs.items()}
    assert keys["en"] == keys["zh-CN"]
    for key in keys["en"]:
        placeholders = {
            locale: set(re.findall(r"%\((\w+)\)s", catalog[key]))
            for locale, catalog in catalogs.items()
        }
        assert placeholders["en"] == placeholders["zh-CN"], key
    assert messages("en")["unsubscribe_button"] == "Unsubscribe"
    assert messages("fr") is messages(SUPPORTED_LOCALES[0])
