"""Headless Chromium (Debian's, never a downloaded one) for checking pages as a user sees them.

The report pipeline opens each report offline in it, and the real-browser tests drive the
web page and the panel with the same executable and flags.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and no background traffic: this machine's network is closed, and a report must
# render with none (component updates, sync and first-run pages would all try to connect).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright, chromium: str | Path = CHROMIUM):
    """Start Debian's Chromium headless through Playwright (`playwright install` is never needed)."""
    return playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS[1:], headless=True)


def check_in_browser(
    report: str | Path,
    screenshot: str | Path | None = None,
    chromium: str | Path = CHROMIUM,
    width: int = 1200,
    height: int = 1500,
) -> dict:
    """Open the report in headless Chromium with the network cut off; count what rendered.

    Returns {"widgets": rendered widget views, "images": loaded images, "tables": tables, "height": the
    page's height in CSS pixels at this width, "remote_requests": URLs the page tried to fetch off this
    machine, "errors": page errors}.
    """
    from playwright.sync_api import sync_playwright

    remote, errors = [], []
    with sync_playwright() as p:
        browser = launch(p, chromium)
        page = browser.new_page(viewport={"width": width, "height": height})

        def route(r):
            if r.request.url.startswith(("file:", "data:")):
                return r.continue_()
            remote.append(r.request.url)
            return r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(Path(report).resolve().as_uri(), wait_until="load")
        page.wait_for_function(
            "document.querySelectorAll('.widget-subarea').length >= "
            "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length",
            timeout=20_000,
        )
        page.wait_for_timeout(500)
        counts = page.evaluate("""() => ({
            widgets: document.querySelectorAll('.widget-subarea > *').length,
            images: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
            tables: document.querySelectorAll('table').length,
            height: document.documentElement.scrollHeight})""")
        if screenshot:
            page.screenshot(path=str(screenshot), type="png")
        browser.close()
    return {**counts, "remote_requests": remote, "errors": errors}
