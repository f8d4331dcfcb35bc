"""Open the Snakemake report in headless Chromium and check every figure displays.

Used by ``tests/test_workflow.py`` (the browser check) and by ``make check-report`` (which
keeps the screenshots for a person to look at). For each dataset category of the report, every
figure is opened with its "eye" button; the figure must load as an image with a real size.
Needs Chromium (``apt-get install chromium``) and the ``playwright`` Python package (no browser
download: the system Chromium is used).
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def check_report(report: Path, categories: list[str], screenshots: Path | None = None) -> dict:
    """Open every figure of every category; return ``{category: {figure: (width, height)}}``."""
    seen: dict[str, dict[str, tuple[int, int]]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for category in categories:
            page.goto(report.resolve().as_uri())
            page.wait_for_timeout(1000)
            page.get_by_text(category, exact=True).click()
            page.wait_for_timeout(300)
            page.get_by_text("Figures", exact=True).click()
            page.wait_for_timeout(300)
            names = [
                row.inner_text().strip() for row in page.query_selector_all("tr td:first-child")
            ]
            seen[category] = {}
            for name in names:
                row = page.locator("tr", has=page.get_by_text(name, exact=True))
                row.locator("a[iconname=eye]").click()
                page.wait_for_timeout(700)
                sizes = [
                    img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
                    for img in page.query_selector_all("img")
                    if (img.get_attribute("src") or "").startswith("data:image/png")
                ]
                seen[category][name] = tuple(max(sizes, default=(0, 0)))
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    slug = f"{category}_{name}".replace(" ", "_").replace("/", "_")
                    page.screenshot(path=str(screenshots / f"{slug}.png"))
                page.go_back()
                page.wait_for_timeout(300)
        browser.close()
    return seen


if __name__ == "__main__":
    result = check_report(Path(sys.argv[1]), sys.argv[3:], Path(sys.argv[2]))
    for category, figures in result.items():
        for name, size in figures.items():
            print(f"{category:10s} {name:45s} {size[0]}x{size[1]}")
    sys.exit(0 if all(w > 100 for f in result.values() for w, _ in f.values()) else 1)
