"""The console in a real browser (Playwright driving Debian's chromium) against one real
``plinth serve``: the operator's rollback, the reviewer's correction, roles and CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from plinth.runtime import opened
from plinth.store.feedback import FeedbackStore
from tests.ui.world import World, records, wait_for_job

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened_page = context.new_page()
    opened_page.set_default_timeout(15_000)
    yield opened_page
    context.close()


def sign_in(page: Page, world: World, role: str, path: str = "/ui") -> None:
    page.goto(world.url + path)
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.fill("#token", world.tokens[role])
    page.click("button[type=submit]")
    expect(page.locator("header .who")).to_contain_text(f"{role}-1 ({role})")


def csrf_of(page: Page) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def test_operator_sees_drift_and_rolls_back_from_the_page(page: Page, world: World) -> None:
    sign_in(page, world, "admin")
    row = page.locator("tr[data-model=diamonds]")
    expect(row).to_have_class(re.compile("trouble"))
    expect(row.locator(".flag")).to_contain_text("carat")
    # Trouble is on top.
    expect(page.locator("table.models tbody tr").first).to_have_attribute("data-model", "diamonds")
    assert (
        world.predict("diamonds", records(world.diamonds.drop(columns=["price"])[:1]))["version"]
        == 2
    )

    row.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text("serving v2")
    expect(page.locator("tr[data-feature=carat] .flag")).to_have_text("drifted")
    page.click("summary[data-action=rollback]")
    page.fill("form[action$='/rollback'] input[name=reason]", "carat drifted after v2")
    page.check("form[action$='/rollback'] input[name=confirm]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[action$='/rollback'] button[type=submit]")

    expect(page.locator(".flash")).to_contain_text("roll back")
    expect(page.locator("h1")).to_contain_text("serving v1")
    latest = page.locator("tr.live")
    expect(latest).to_contain_text("rollback")
    expect(latest).to_contain_text("console:admin-1")
    expect(latest).to_contain_text("carat drifted after v2")
    # The next API reply comes from the old version.
    reply = world.predict("diamonds", records(world.diamonds.drop(columns=["price"])[:1]))
    assert reply["version"] == 1


def test_reviewer_claims_and_corrects_a_case(page: Page, world: World) -> None:
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    sign_in(page, world, "reviewer", "/ui/review?model=churn")
    first = page.locator("table.queue tr[data-review]").first
    review_id = str(first.get_attribute("data-review"))
    first.locator("button", has_text="Claim").click()
    expect(page).to_have_url(re.compile(f"/ui/review/{review_id}$"))
    expect(page.locator(".lease")).to_contain_text("Claimed by reviewer-1")
    # At phone width the case fits: no sideways scrolling, both buttons on screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("button[value=correct]")).to_be_in_viewport(ratio=1)
    predicted = page.locator(".answer b").inner_text()
    other = "no" if predicted == "yes" else "yes"
    page.fill("input[name=note]", "checked the contract")
    page.locator(f"input[name=label][value={other}]").check()
    page.keyboard.press("Escape")
    page.locator("body").press("c")  # the keyboard shortcut for "correct"
    expect(page).not_to_have_url(re.compile(f"/ui/review/{review_id}$"))
    expect(page.locator(".flash")).to_contain_text(f"Resolved {review_id}")

    with opened(world.settings) as runtime:
        shown = runtime.review_queue.show(review_id)
        labels = FeedbackStore(runtime.store).read_labels(
            "churn", datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
        )
    assert shown["status"] == "resolved" and shown["action"] == "correct"
    assert shown["resolved_by"] == "reviewer-1" and shown["note"] == "checked the contract"
    (label,) = [row for row in labels if row.prediction_id == shown["prediction_id"]]
    assert label.source == "reviewer" and label.label == other


def test_a_predict_token_sees_no_admin_buttons_and_may_not_post(page: Page, world: World) -> None:
    sign_in(page, world, "predict", "/ui/models/diamonds")
    expect(page.locator("h1")).to_contain_text("diamonds")
    expect(page.locator("#actions")).to_have_count(0)
    expect(page.locator("header nav")).not_to_contain_text("Review")
    before = httpx.get(
        f"{world.url}/v1/deployments/diamonds/history",
        headers={"authorization": f"Bearer {world.tokens['admin']}"},
    ).json()["revisions"]
    refused = page.request.post(
        f"{world.url}/ui/models/diamonds/rollback",
        form={"csrf_token": csrf_of(page), "reason": "try", "confirm": "yes"},
    )
    assert refused.status == 403
    assert "text/html" in refused.headers["content-type"]
    assert "auth.forbidden" in refused.text()
    assert page.request.get(f"{world.url}/ui/review").status == 403
    after = httpx.get(
        f"{world.url}/v1/deployments/diamonds/history",
        headers={"authorization": f"Bearer {world.tokens['admin']}"},
    ).json()["revisions"]
    assert after == before


def test_a_post_without_the_csrf_token_is_refused(page: Page, world: World) -> None:
    sign_in(page, world, "admin", "/ui/models/diamonds")
    for form in (
        {"reason": "no token", "confirm": "yes"},
        {"csrf_token": "0" * 64, "reason": "forged", "confirm": "yes"},
    ):
        refused = page.request.post(f"{world.url}/ui/models/diamonds/rollback", form=form)
        assert refused.status == 403
        assert "auth.csrf_failed" in refused.text()
    # A browser without the session gets the sign-in page, not the console.
    anonymous = httpx.get(f"{world.url}/ui/models/diamonds")
    assert anonymous.status_code == 303 and "/ui/login" in anonymous.headers["location"]
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["plinth_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"


def test_the_jobs_section_shows_a_real_training_job(page: Page, world: World) -> None:
    job = wait_for_job(world, world.training_job)
    # The world's recipe beats v2 on the registered holdout; auto_deploy = false holds it.
    assert (job["state"], job["version"], job["outcome"]) == ("succeeded", 3, "awaiting_approval")
    assert job["trigger"] == "manual" and job["stage"] == "registering", job
    sign_in(page, world, "admin")
    # Home: the model's last training job, linking to it.
    last = page.locator("tr[data-model=diamonds] td.job")
    expect(last.locator("[data-state]")).to_have_text(job["state"])
    expect(last.locator("a")).to_have_attribute("href", f"/ui/jobs/{job['id']}")
    expect(last).to_contain_text("v3")
    expect(page.locator("tr[data-model=churn] td.job")).to_have_text("—")

    # The model page: the job in the retraining section, with its verdict and version.
    page.goto(f"{world.url}/ui/models/diamonds")
    row = page.locator(f"#jobs tr[data-job='{job['id']}']")
    expect(row).to_contain_text("manual")
    expect(row.locator("[data-state]")).to_have_text(job["state"])
    expect(row.locator("td").nth(3)).to_have_text("done")  # it got through every step
    gate = job["gate"]
    assert isinstance(gate, dict), job
    expect(row).to_contain_text("passed" if gate["passed"] else "rejected")
    expect(row).to_contain_text(f"rmse {gate['metrics']['candidate']['rmse']:.4g}")
    expect(row).to_contain_text("v3")
    expect(row).to_contain_text("awaiting_approval")

    # The job's page: its steps, its data and the gate's table, row for row.
    row.locator("a").first.click()
    expect(page).to_have_url(re.compile(f"/ui/jobs/{job['id']}$"))
    expect(page.locator("h1")).to_contain_text(job["id"])
    steps = page.locator("#stages tr td:first-child")
    expect(steps.first).to_have_text("building data")
    assert steps.all_inner_texts() == ["building data", "training", "gating", "registering"]
    holdout = job["data"]["holdout_rows"]  # type: ignore[index]
    expect(page.locator("#data")).to_contain_text(f"{holdout} rows, registered holdout")
    table = page.locator("#gate table.gate")
    expect(table.locator("tr", has_text="paired bootstrap")).to_contain_text(
        "yes" if gate["relative"]["ok"] else "no"
    )
    rmse = table.locator("tr", has=page.locator("td", has_text=re.compile("^rmse$")))
    expect(rmse).to_contain_text(f"{gate['metrics']['champion']['rmse']:.4g}")
    expect(page.locator("#gate")).to_contain_text(f"same {gate['rows']} holdout rows")
    # A job that does not exist: the console's error page with the code.
    missing = page.request.get(f"{world.url}/ui/jobs/nope")
    assert missing.status == 404 and "training.job_not_found" in missing.text()
