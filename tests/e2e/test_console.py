"""The web console in a real headless browser (Debian's Chromium driven by Playwright): sign in
with an API key, open a campaign, start it, watch the KPIs update live, pause it, and check
screenshots of the campaign page before and after the live update: the page is drawn, the KPI
cards changed and the header did not."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops

from outbound_core.devstack import DevStack

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(tmp_path: Path) -> Any:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        yield context.new_page()
        context.close()
        browser.close()


def _image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def _changed_fraction(before: bytes, after: bytes) -> float:
    """The share of pixels that differ between two screenshots of the same element."""
    a, b = _image(before), _image(after)
    assert a.size == b.size, (a.size, b.size)
    box = ImageChops.difference(a, b).point(lambda v: 255 if v > 16 else 0).convert("L")
    histogram = box.histogram()
    return 1 - histogram[0] / (a.size[0] * a.size[1])


def _looks_rendered(png: bytes) -> bool:
    """A page with text, cards and a chart has many colours and is not one flat background."""
    image = _image(png).resize((320, 200))
    colours = image.getcolors(maxcolors=320 * 200) or []
    dominant = max(count for count, _ in colours)
    return len(colours) > 50 and dominant < 0.95 * 320 * 200


def test_console_campaign_page_updates_live(
    stack: DevStack, api: httpx.Client, page: Any, tmp_path: Path
) -> None:
    agent = api.post("/v1/agents", json={"name": "Console", "language": "en-US"}).json()["id"]
    contacts = [
        {
            "phone": f"+1212736{5000 + i}",
            "name": f"Lead {i}",
            "sim_outcomes": "interested" if i % 2 else "no_answer",
        }
        for i in range(6)
    ]
    campaign = api.post(
        "/v1/campaigns",
        json={
            "name": "Console campaign",
            "script_id": agent,
            "language": "en-US",
            "contacts": contacts,
            "max_attempts": 5,
            "retry_interval_minutes": 1440,
            "calling_hours": {"start": "00:00", "end": "00:00"},
        },
    ).json()

    page.goto(f"{stack.api_url}/console/")
    page.fill("#key", stack.api_key)
    page.click("#login button")
    page.click(f"#campaigns tr[data-id='{campaign['id']}']")
    page.wait_for_selector("#c-status.scheduled")
    assert page.text_content("#k-made") == "0"
    assert page.locator("#leads tbody tr").count() == 6
    before = page.screenshot(path=str(tmp_path / "before.png"), full_page=True)
    kpis_before = page.locator(".kpis").screenshot()
    header_before = page.locator("header").screenshot()

    page.click(".actions button[data-action='start']")
    page.wait_for_selector("#c-status.running")
    # Live: the KPI cards and the lead table change without reloading the page.
    page.wait_for_function(
        "Number(document.querySelector('#k-made').textContent) >= 6", timeout=60_000
    )
    page.wait_for_function(
        "document.querySelector('#k-interested').textContent === '3'", timeout=60_000
    )
    assert "completed" in page.text_content("#leads tbody")
    after = page.screenshot(path=str(tmp_path / "after.png"), full_page=True)
    # The screenshots: the whole page is drawn, the KPI cards changed, the header did not.
    assert _looks_rendered(before) and _looks_rendered(after)
    assert _changed_fraction(kpis_before, page.locator(".kpis").screenshot()) > 0.002
    assert _changed_fraction(header_before, page.locator("header").screenshot()) == 0

    page.click(".actions button[data-action='pause']")
    page.wait_for_selector("#c-status.paused")
    assert api.get(f"/v1/campaigns/{campaign['id']}").json()["status"] == "paused"

    # Per-lead call history with the transcript of the conversation.
    page.click("#leads tbody tr:has-text('interested') >> nth=0")
    page.wait_for_selector("#history .call pre")
    assert "interested" in page.text_content("#history")
    assert page.locator("#history .call pre").first.text_content().strip()
    assert page.locator("#trend polyline").count() == 1

    page.click("#home")
    page.wait_for_selector("#list-view:not([hidden])")
    assert "Console campaign" in page.text_content("#campaigns")
