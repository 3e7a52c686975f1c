"""Headless Chromium for the tests that open pages (the playground, the documentation site):
Debian's `chromium` with its `chromium-driver`, through Selenium. Without them those tests are
skipped, except under `CI=true`, where they fail (`.ci/run` installs them)."""

from __future__ import annotations

import os
import shutil

import pytest
from selenium.webdriver import ChromeOptions


def find_chromium() -> tuple[str, str]:
    """Chromium and its driver, or a skip (a failure under CI) that says how to get them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = (
        "the browser tests need Chromium and its driver: apt-get install -y chromium "
        "chromium-driver"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (.ci/run installs them)")
    pytest.skip(reason)


def headless_options(chromium: str) -> ChromeOptions:
    """Options for `chromium` headless, in a laptop-sized window."""
    options = ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the suite runs as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1366,768",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    return options
