"""Photograph the HTML monitoring report for the docs:
``python -m tests.services.monitoring.report_screenshot [docs/img] [--dark]``.

Seeds a temporary SQLite store as ``test_report_html`` does (fourteen minutes of churn
traffic, the last four shifted, slow and with contract failures; sixty logged predictions,
half labelled), writes the page and photographs the whole of it in Debian's chromium with
JavaScript off: light (``monitor-report.png``) and, with ``--dark``, dark too.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from plinth.config.settings import Settings
from plinth.services.monitoring.report_html import render_html
from plinth.services.registry.versions import Registry
from plinth.store import Store
from plinth.store.artifacts import ArtifactStore
from tests.services.monitoring.test_report_html import build_report, seed
from tests.ui.world import CHROMIUM


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--dark"]
    out = Path(args[0] if args else "docs/img")
    schemes = ("light", "dark") if "--dark" in sys.argv else ("light",)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(home=Path(root))
        store = Store(settings.resolved_database_url())
        try:
            page_file = Path(root) / "report.html"
            page_file.write_text(
                render_html(
                    build_report(seed(Registry(store, ArtifactStore(settings.artifacts_dir))))
                ),
                encoding="utf-8",
            )
        finally:
            store.close()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for scheme in schemes:
                context = browser.new_context(
                    viewport={"width": 1200, "height": 900},
                    color_scheme=scheme,
                    java_script_enabled=False,
                )
                page = context.new_page()
                page.goto(page_file.as_uri())
                suffix = "" if scheme == "light" else "-dark"
                page.screenshot(path=str(out / f"monitor-report{suffix}.png"), full_page=True)
                context.close()
            browser.close()


if __name__ == "__main__":
    main()
