"""mitmweb with the addon, in a real browser: Debian's headless Chromium, driven by selenium
through Debian's chromedriver (no browser or driver download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.direct import put_direct
from tests.support.proxy import WEB_PASSWORD, start_mitmweb

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# mitmweb's default flow list, plus the comment column, where the addon names the backends
# (a list option: one --set per value).
COLUMNS = [
    f"web_columns={column}"
    for column in ("tls", "icon", "path", "method", "status", "size", "time", "comment")
]


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[dev]'")
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Chromium not installed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",  # as root
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1400,600",
    ):
        options.add_argument(argument)
    # An explicit driver path: selenium does not run Selenium Manager (which downloads).
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


@pytest.mark.client("mitmweb", "in Chromium: the flow list's comments name the backends tried")
def test_mitmweb_flow_list_in_a_browser_names_the_backends(
    backends, browser, tmp_path, bucket, capsys
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    proxy, web_port = start_mitmweb(backends, tmp_path, *COLUMNS)
    try:
        client = proxy.client()
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="new.txt", Body=b"written to the primary")
        put_direct(backends[2], bucket, "cold.txt", b"only the tertiary has this")
        assert client.get_object(Bucket=bucket, Key="cold.txt")["Body"].read() == (
            b"only the tertiary has this"
        )
        with pytest.raises(ClientError):
            proxy.client(secret="not-the-root-secret").get_object(Bucket=bucket, Key="new.txt")

        browser.get(f"http://127.0.0.1:{web_port}/?token={WEB_PASSWORD}")
        fallback = f"GetObject /{bucket}/cold.txt via [primary 404"
        row = WebDriverWait(browser, 20).until(
            expected_conditions.presence_of_element_located(
                (By.XPATH, f"//tr[td[@class='col-comment' and starts-with(., '{fallback}')]]")
            )
        )
        cells = browser.find_elements(By.CSS_SELECTOR, "td.col-comment")
        listed = [cell.get_attribute("textContent") for cell in cells]
        row.click()  # the flow's details open beside the list; the list's column is 150 px
        browser.find_element(By.XPATH, "//div[@class='flow-detail']//nav/a[.='Comment']").click()
        shown = expected_conditions.visibility_of_element_located(
            (By.CSS_SELECTOR, ".flow-detail .kv-value")
        )
        detail = WebDriverWait(browser, 10).until(shown).text
        screenshot = tmp_path / "mitmweb.png"
        browser.save_screenshot(str(screenshot))
        with capsys.disabled():
            print(f"\nmitmweb screenshot: {screenshot}")
    finally:
        proxy.stop()
    assert detail.startswith(fallback), detail
    assert ", secondary 404 " in detail and detail.endswith("] answered by tertiary"), detail
    assert detail in listed
    assert any(c.startswith(f"PutObject /{bucket}/new.txt via [primary 200") for c in listed)
    assert "refused: SignatureDoesNotMatch" in listed, listed
