"""A real browser on the page ``aar demo`` serves: headless Chromium presses Generate and waits for the audio.

The test fails on any console error and on any request to a host other than the app's, so the page
must work offline. It needs Debian's ``chromium`` (``apt-get install -y chromium``) and the Playwright
Python package; it is skipped, with that reason, where either is missing. Set
``AAR_DEMO_SCREENSHOT=path.png`` to keep the screenshot (docs/img/demo.png is made this way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from demo_server import MODEL, TOKENIZER, free_port

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def served(tmp_path):
    """``aar demo`` on the fixture model, as a user starts it; yields its address."""
    pytest.importorskip("gradio")
    port = free_port()
    temp = tmp_path / "tmp"  # where the server makes its temporary folder
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]),
                                                                         os.environ.get("PYTHONPATH", "")]))
    log = (tmp_path / "server.log").open("w")
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "aar", "demo", "--model", str(MODEL.relative_to(root)),
         "--tokenizer", str(TOKENIZER.relative_to(root)), "--precision", "fp32", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"aar demo did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        assert len(list(temp.glob("aar-demo-*"))) == 1
        yield url
    finally:
        server.terminate()
        status = server.wait(timeout=30)
        log.close()
    assert status == 0, (tmp_path / "server.log").read_text()[-2000:]  # SIGTERM stops it as Ctrl+C does
    assert not any(temp.glob("aar-demo-*")), "the server left its temporary folder behind"


def test_the_page_generates_in_a_real_browser_offline(served, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}): apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    app_host = urlsplit(served).netloc
    errors, foreign = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 1000})
        try:
            browser.on("request", lambda r: foreign.append(r.url)
                       if urlsplit(r.url).scheme in ("http", "https", "ws", "wss")
                       and urlsplit(r.url).netloc != app_host else None)
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served, wait_until="load")
            page.locator("#aar-model").wait_for(timeout=60_000)
            assert "precision fp32" in page.locator("#aar-model").inner_text()
            page.locator("#generate").click()
            page.get_by_text("done: 1 sample(s)").wait_for(timeout=120_000)
            page.locator(".aar-final audio").first.wait_for(state="attached", timeout=30_000)
            players = page.locator(".aar-final audio").evaluate_all("els => els.map(e => e.currentSrc)")
            links = page.locator("a[href*='generated_0_seed0']").evaluate_all("els => els.map(e => e.href)")
            assert {Path(urlsplit(link).path).suffix for link in links} == {".wav", ".flac", ".codes"}
            addresses = links + [s.removeprefix("blob:") for s in players if s]
            assert all(urlsplit(u).netloc == app_host for u in addresses), addresses
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            tabs = (("Variations", "Vary"), ("Inpaint / continue", "Run"), ("Tokenizer", "Tokenize"))
            for tab, button in tabs:
                page.get_by_role("tab", name=tab).click()  # every tab renders (console errors fail below)
                page.get_by_role("button", name=button, exact=True).wait_for(timeout=30_000)
        finally:
            browser.close()
    if os.environ.get("AAR_DEMO_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["AAR_DEMO_SCREENSHOT"])
    assert shot.stat().st_size > 10_000
    assert not foreign, f"requests to other hosts than {app_host}: {foreign}"
    assert not errors, f"console errors: {errors}"
