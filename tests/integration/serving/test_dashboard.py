"""The dashboard in headless Debian chromium: figures, A/B report, alerts, user explorer."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest
import redis

from streams.settings import Settings
from tests.integration.serving.conftest import Api
from tests.integration.serving.support import seed_ab_and_alerts, seed_lists, seed_worker_metrics

CHROMIUM = Path("/usr/bin/chromium")
# `make dashboard-image` sets this to refresh docs/img/dashboard.png from this test.
SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"


def _png_rows(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct pixel rows of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    # Rows are compared as filtered bytes: a blank page gives a handful of distinct ones.
    rows = {raw[i * stride : (i + 1) * stride] for i in range(height)}
    return width, height, rows


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium; `make browser` installs it, and `make test` does so in CI."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: run `make browser`")  # a failure in CI (conftest)
    return CHROMIUM


async def test_dashboard_shows_figures_ab_alerts_and_a_user(
    api: Api, serving_settings: Settings, chromium: Path, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    with redis.Redis.from_url(serving_settings.redis_url) as client:
        seed_lists(client, serving_settings.namespace)
        seed_ab_and_alerts(client, serving_settings.namespace)
    await seed_worker_metrics(serving_settings.redis_url, serving_settings.namespace)
    url = api.url("/dashboard")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(url)
        await page.wait_for_selector("#ab table")
        ab = await page.inner_text("#ab")
        assert "5.00 %" in ab and "3.66 %" in ab and "4.36 %" in ab  # CTR and its interval
        assert "significant" in ab and "leader B" in ab and "also_bought" in ab
        alerts = await page.inner_text("#alerts")
        assert "CTR of B dropped" in alerts and "PageHinkley" in alerts
        assert "42" in await page.inner_text("#events")
        assert "not_json" in await page.inner_text("#dead")
        assert "p50" in await page.inner_text("#fresh")
        await page.fill("#uid", "u1")
        await page.click("#explore button")
        await page.wait_for_selector("#list tr:nth-child(2)")
        listing = await page.inner_text("#list")
        assert "bought with Item number 1" in listing and "trending in shoes" in listing
        assert "Item number 9" in await page.inner_text("#recent")
        shot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        await browser.close()
    assert errors == []
    data = shot.read_bytes()
    width, height, rows = _png_rows(data)
    assert (width, height) >= (1280, 1100)
    assert len(data) > 50_000, "a screenshot this small is nearly empty"
    assert len(rows) > 200, "too few distinct pixel rows: the page looks blank"
    if target := os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, target)


async def test_dashboard_empty_state(api: Api, serving_settings: Settings, chromium: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(api.url("/dashboard"))
        await page.wait_for_function(
            "document.getElementById('meta').textContent.includes('namespace')"
        )
        assert "No A/B report yet." in await page.inner_text("#ab")
        assert "No drift alerts." in await page.inner_text("#alerts")
        assert "none active" in await page.inner_text("#meta")
        await browser.close()
