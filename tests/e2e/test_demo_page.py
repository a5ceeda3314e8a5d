"""The demo page at / in a real headless Chromium (Debian's chromium + chromedriver, selenium),
against the real server: choose an image, enter the token, see the boxes and the text."""

from __future__ import annotations

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium/chromedriver missing: `make test` installs them (make browser)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    yield drv
    drv.quit()


def test_demo_page_reads_an_image(browser, server, eval_dir, tmp_path):
    browser.get(server.url + "/")
    assert browser.title == "OCR service demo"
    browser.find_element(By.ID, "token").send_keys(server.token)
    browser.find_element(By.ID, "file").send_keys(str(eval_dir / "tess_phototest.png"))
    wait = WebDriverWait(browser, 60)
    wait.until(EC.element_to_be_clickable((By.ID, "run"))).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lines li")) == 8)
    texts = browser.execute_script(
        "return [...document.querySelectorAll('#lines li')].map(li => li.firstChild.textContent);")
    assert texts[0] == "This is a lot of 12 point text to test the"
    assert texts[-1] == "brown dog jumped over the lazy fox."
    assert "8 line(s)" in browser.find_element(By.ID, "status").text
    size = browser.execute_script("const c = document.getElementById('canvas'); return [c.width, c.height];")
    assert size == [640, 480]
    # the boxes are drawn: green pixels where the first box's top edge is
    green = browser.execute_script(
        "const d = document.getElementById('canvas').getContext('2d').getImageData(100, 85, 1, 1).data;"
        "return [d[0], d[1], d[2]];")
    assert green[1] > 100 and green[0] < 80, green
    browser.save_screenshot(str(tmp_path / "demo.png"))
    shot = tmp_path / "demo.png"
    assert shot.stat().st_size > 10_000


def test_demo_page_shows_errors(browser, server, eval_dir):
    browser.get(server.url + "/")
    browser.find_element(By.ID, "token").send_keys("wrong-token")
    browser.find_element(By.ID, "file").send_keys(str(eval_dir / "tjs_simple.png"))
    wait = WebDriverWait(browser, 60)
    wait.until(EC.element_to_be_clickable((By.ID, "run"))).click()
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("class") == "error")
    assert browser.find_element(By.ID, "status").text.startswith("401")


def test_demo_page_needs_no_token_and_sets_a_strict_csp(server):
    import httpx

    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "connect-src 'self'" in r.headers["content-security-policy"]
