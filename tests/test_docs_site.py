"""The documentation site as a reader gets it: `mkdocs build --strict` into a temporary folder,
served over loopback HTTP, opened in headless Chromium (`tests.browser`): pages render with their
navigation, a navigation link loads its page, and search finds a word and leads to its page."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import find_chromium, headless_options

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 30.0
T = TypeVar("T")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as .ci/run builds it."""
    if importlib.util.find_spec("mkdocs") is None:
        reason = "the docs site test needs the docs dependency group: uv sync --group docs"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-5000:]
    return folder


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Nothing on stderr for each file served."""


@pytest.fixture(scope="module")
def base(site: Path) -> Iterator[str]:
    """The site's address, served from a thread on a free loopback port."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the site's HTTP server did not stop"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    chromium, driver_path = find_chromium()
    driver = Chrome(service=Service(driver_path), options=headless_options(chromium))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Chrome, condition: Callable[[], T], timeout_s: float = WAIT_S) -> T:
    """Poll `condition` until it gives something truthy (missing elements count as not yet)."""
    found: T = WebDriverWait(
        driver,
        timeout_s,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(lambda _: condition())
    return found


def _heading(driver: Chrome) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, "article h1").text)


def _tabs(driver: Chrome) -> dict[str, str]:
    """The navigation tabs' labels and addresses."""
    links = driver.find_elements(By.CSS_SELECTOR, "nav.md-tabs a.md-tabs__link")
    return {str(link.text).strip(): str(link.get_attribute("href")) for link in links}


def test_the_home_page_renders_with_its_navigation_and_a_tab_loads_its_page(
    browser: Chrome, base: str
) -> None:
    browser.get(base + "/")
    assert wait_for(browser, lambda: _heading(browser)) == "python-mcp-server"
    tabs = wait_for(browser, lambda: _tabs(browser))
    assert {"Home", "Getting started", "Guide", "Operations", "Reference"} <= set(tabs), tabs

    browser.find_element(By.LINK_TEXT, "Reference").click()
    wait_for(browser, lambda: _heading(browser) == "Tools reference")
    assert browser.current_url.startswith(base + "/reference/tools/")
    # the generated page renders its tables, and the sidebar lists the section's pages
    assert browser.find_element(By.CSS_SELECTOR, "article table code").text == "run_python_code"
    sidebar = browser.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link")
    assert {"Architecture", "Changelog"} <= {str(link.text).strip() for link in sidebar}

    browser.find_element(By.CSS_SELECTOR, "nav.md-nav--primary a[href$='changelog/']").click()
    wait_for(browser, lambda: _heading(browser) == "Changelog")

    browser.find_element(By.LINK_TEXT, "Operations").click()
    wait_for(browser, lambda: _heading(browser) == "Configuration")
    flags = {str(code.text) for code in browser.find_elements(By.CSS_SELECTOR, "article td code")}
    assert {"--kernel-pool-size", "PYTHON_MCP_SERVER_KERNEL_POOL_SIZE"} <= flags


def test_search_finds_a_word_and_leads_to_the_page_that_holds_it(
    browser: Chrome, base: str
) -> None:
    browser.get(base + "/")
    wait_for(browser, lambda: _heading(browser))
    query = wait_for(
        browser,
        lambda: next(
            field
            for field in browser.find_elements(By.CSS_SELECTOR, "input.md-search__input")
            if field.is_displayed()
        ),
    )
    query.click()
    query.send_keys("bubblewrap")

    # the list is drawn as the search worker answers, and drawn again as it answers more: each
    # reading and the click look the links up afresh (a stale one is looked up again)
    def addresses() -> list[str]:
        links = browser.find_elements(By.CSS_SELECTOR, "li.md-search-result__item a")
        return [str(link.get_attribute("href")) for link in links]

    assert wait_for(browser, lambda: [a for a in addresses() if "/security/" in a])

    def open_result() -> bool:
        selector = "li.md-search-result__item a[href*='/security/']"
        browser.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_for(browser, open_result)
    wait_for(browser, lambda: "/security/" in browser.current_url)
    assert wait_for(browser, lambda: _heading(browser))
    # search.highlight marks the word on the page it leads to
    marks = wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "article mark"))
    assert any(str(mark.text).lower() == "bubblewrap" for mark in marks)
