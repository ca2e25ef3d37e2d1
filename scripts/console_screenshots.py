"""Screenshots of the Prefect UI for the README's console section (docs/console-*.png).

    make serve
    .venv/bin/python scripts/console_screenshots.py --ui http://127.0.0.1:4200

Headless Chromium (Debian's, driven by Playwright: browser builds cannot be downloaded here).
The PNGs are small (a 1280x800 viewport, PNG as Chromium writes it): re-take them when the UI
or the deployments change, not on every release.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def _deployment_id(ui: str, name: str) -> str:
    response = httpx.get(f"{ui}/api/deployments/name/{name}", timeout=10)
    response.raise_for_status()
    return str(response.json()["id"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ui", default="http://127.0.0.1:4200")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    options = parser.parse_args(argv)
    ui = options.ui.rstrip("/")
    options.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=options.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{ui}/deployments", wait_until="networkidle")
        page.get_by_text("revisits-daily").first.wait_for()
        page.screenshot(path=str(options.out / "console-deployments.png"))
        deployment = _deployment_id(ui, "revisits/revisits-daily")
        page.goto(f"{ui}/deployments/deployment/{deployment}/run", wait_until="networkidle")
        page.get_by_text("as_of (Optional)").wait_for()
        page.screenshot(path=str(options.out / "console-custom-run.png"), full_page=False)
        browser.close()
    sys.stdout.write(f"screenshots in {options.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
