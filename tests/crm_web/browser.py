"""Headless Chromium for the page tests: Debian's chromium driven by Playwright (browser builds
cannot be downloaded here), a page that records its console, and checks of the screenshots."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def launch_chromium() -> Iterator[Browser]:
    """The browser for a test module; skipped without chromium, except on CI where it fails."""
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} is missing: install Debian's chromium "
            "(apt-get install -y chromium); never `playwright install`"
        )
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def open_page(browser: Browser, *, locale: str, height: int, console: list[str]) -> Iterator[Page]:
    """A fresh context and page in ``locale``; console messages are appended to ``console``."""
    context = browser.new_context(locale=locale, viewport={"width": 800, "height": height})
    page = context.new_page()

    def record(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")

    page.on("console", record)
    try:
        yield page
    finally:
        context.close()


def check_screenshots(tmp_path: Path, names: tuple[str, ...], *, keep_as: str) -> None:
    """Each screenshot is a real, non-trivial PNG; with ``CRM_WEB_SCREENSHOT_DIR`` set, copies
    them there as ``{keep_as}-{name}`` to look at by eye."""
    for name in names:
        image = (tmp_path / name).read_bytes()
        assert image.startswith(PNG_SIGNATURE) and len(image) > 5_000, name
    screenshot_dir = os.environ.get("CRM_WEB_SCREENSHOT_DIR")
    if screenshot_dir:
        for name in names:
            target = Path(screenshot_dir) / f"{keep_as}-{name}"
            target.write_bytes((tmp_path / name).read_bytes())
