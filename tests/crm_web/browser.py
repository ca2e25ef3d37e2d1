"""Headless Chromium for the page tests: Debian's chromium driven by Playwright (browser builds
cannot be downloaded here), a page that records its console, and checks of the screenshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

# The names Chromium is installed under: Debian (chromium), Ubuntu's and older Debian's
# (chromium-browser), Google's packages (google-chrome, google-chrome-stable) and some others.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# A path (or command name) that overrides the search.
CHROMIUM_ENV = "CRM_CHROMIUM"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INSTALL_HINT = "install Debian's chromium (apt-get install -y chromium); never `playwright install`"


class ChromiumNotFound(Exception):
    """No Chromium to drive; the message says where it was looked for."""


def on_ci(environ: Mapping[str, str]) -> bool:
    """CI services set ``CI=true`` (some ``CI=1``); unset, empty, 0 or false means a local run."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_chromium(environ: Mapping[str, str]) -> Path:
    """The Chromium executable: ``CRM_CHROMIUM`` if set, else the first of ``CHROMIUM_NAMES``
    on ``PATH``."""
    search_path = environ.get("PATH", os.defpath)
    override = environ.get(CHROMIUM_ENV)
    if override:
        found = shutil.which(override, path=search_path)
        if found is None:
            raise ChromiumNotFound(f"{CHROMIUM_ENV}={override!r} is not an executable")
        return Path(found)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=search_path)
        if found is not None:
            return Path(found)
    raise ChromiumNotFound(
        f"no Chromium on PATH under any of {', '.join(CHROMIUM_NAMES)} (or set {CHROMIUM_ENV}): "
        + INSTALL_HINT
    )


def require_chromium(environ: Mapping[str, str]) -> Path:
    """The Chromium to launch. Without one the test fails on CI (a CI that skips every browser
    test would pass without testing a page) and when ``CRM_CHROMIUM`` names nothing, and is
    skipped with the reason otherwise."""
    try:
        return find_chromium(environ)
    except ChromiumNotFound as exc:
        if on_ci(environ):
            pytest.fail(f"browser tests cannot run on CI: {exc}")
        if environ.get(CHROMIUM_ENV):
            pytest.fail(f"browser tests cannot run: {exc}")
        pytest.skip(f"browser test skipped: {exc}")


def launch_chromium() -> Iterator[Browser]:
    """The browser for a test module (see ``require_chromium`` for when there is none)."""
    executable = require_chromium(os.environ)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
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
