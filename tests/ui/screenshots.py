"""Take the console's screenshots for the docs: ``python -m tests.ui.screenshots [docs/img]``.

Builds the test world (tests.ui.world: diamonds v1 then v2, churn with a review gate),
sends a few minutes' worth of traffic in bursts (normal, then shifted diamonds) after a
diamonds training job ran, and photographs each page in Debian's chromium, light and dark.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.support import churn_table
from tests.ui.world import (
    CHROMIUM,
    World,
    build,
    records,
    shifted,
    start_retraining,
    wait_for_job,
)


def traffic(world: World, bursts: int = 24) -> str:
    """Bursts a second apart (one interval each); returns a churn prediction id."""
    base = world.diamonds.drop(columns=["price"])
    churn = churn_table(9, rows=400).drop(columns=["churn"])
    last = ""
    for i in range(bursts):
        sample = base.sample(n=20 + 10 * (i % 5), random_state=i)
        world.predict("diamonds", records(shifted(sample) if i >= bursts // 3 else sample))
        reply = world.predict("churn", records(churn.iloc[i * 12 : i * 12 + 12]))
        last = reply["predictions"][0]["prediction_id"]
        time.sleep(1.0)
    time.sleep(2.0)
    return last


def sign_in(page: Page, world: World, role: str) -> None:
    page.goto(f"{world.url}/ui/login")
    page.fill("#token", world.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_load_state()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        world = build(Path(root))
        try:
            # The job first: a trainer beside the traffic would show in its latency chart.
            job_id = start_retraining(world)
            wait_for_job(world, job_id)
            prediction_id = traffic(world)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for scheme in ("light", "dark"):
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 1000}, color_scheme=scheme
                    )
                    page = context.new_page()
                    sign_in(page, world, "admin")
                    suffix = "" if scheme == "light" else "-dark"
                    page.goto(f"{world.url}/ui/models/diamonds?window=1h")
                    page.screenshot(path=str(out / f"console-model{suffix}.png"))
                    if scheme == "light":
                        page.goto(f"{world.url}/ui")
                        page.screenshot(path=str(out / "console-models.png"))
                        page.goto(f"{world.url}/ui/models/diamonds?window=1h#drift")
                        page.locator("#drift").screenshot(path=str(out / "console-drift.png"))
                        page.goto(f"{world.url}/ui/models/diamonds?window=1h#jobs")
                        page.locator("#jobs").screenshot(path=str(out / "console-jobs.png"))
                        page.goto(f"{world.url}/ui/jobs/{job_id}")
                        page.screenshot(path=str(out / "console-job.png"), full_page=True)
                        page.goto(f"{world.url}/ui/predictions/{prediction_id}?replay=1")
                        page.screenshot(path=str(out / "console-prediction.png"))
                        page.goto(f"{world.url}/ui/review?model=churn")
                        page.screenshot(path=str(out / "console-review-queue.png"))
                    context.close()
                phone = browser.new_context(
                    viewport={"width": 390, "height": 844}, device_scale_factor=2
                )
                page = phone.new_page()
                sign_in(page, world, "reviewer")
                page.goto(f"{world.url}/ui/review?model=churn")
                page.locator("table.queue button", has_text="Claim").first.click()
                page.wait_for_load_state()
                page.screenshot(path=str(out / "console-review-phone.png"), full_page=True)
                phone.close()
                browser.close()
        finally:
            world.stop()
    for path in sorted(out.glob("console-*.png")):
        print(path)


if __name__ == "__main__":
    main()
