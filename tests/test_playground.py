"""The web playground at `/`, driven in a real headless Chromium against a real server.

The browser is Debian's `chromium` with its `chromium-driver`, through Selenium; the server is a
real subprocess (`tests.servers.http_server`). Without the browser these tests are skipped, except
under `CI=true`, where they fail (`.ci/run` installs it).
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from python_mcp_server.config import ServerConfig
from tests.browser import find_chromium, headless_options
from tests.servers import RunningServer, http_server, threaded_http_server

F = TypeVar("F", bound=Callable[..., None])


def in_browser(test: F) -> F:
    """Marks a test that drives the page in Chromium (and starts kernels)."""
    marked: F = pytest.mark.browser(pytest.mark.kernel(test))
    return marked


WAIT_S = 60.0  # a first run starts a kernel, and a plot imports matplotlib
TOKEN = "playground-test-token-" + "x" * 16
T = TypeVar("T")


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[Chrome]:
    chromium, driver_path = find_chromium()
    options = headless_options(chromium)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = Chrome(service=Service(driver_path), options=options)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_PROBLEMS})
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def served_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("playground") / "workspace"
    workspace.mkdir()
    return workspace


@pytest.fixture(scope="module")
def served(served_workspace: Path) -> Iterator[RunningServer]:
    with http_server(served_workspace) as server:
        yield server


@pytest.fixture
def page(browser: Chrome, served: RunningServer) -> Chrome:
    """The playground freshly loaded, in a tab whose storage is cleared, its editor ready."""
    browser.get(served.base + "/")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get(served.base + "/")
    wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, "[data-testid=code]"))
    wait_for(browser, lambda: _text(browser, "#conn-text").startswith("v"))
    return browser


def wait_for(driver: Chrome, condition: Callable[[], T], timeout_s: float = WAIT_S) -> T:
    """Poll `condition` until it gives something truthy (missing elements count as not yet)."""
    found: T = WebDriverWait(
        driver,
        timeout_s,
        poll_frequency=0.1,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(lambda _: condition())
    return found


def _text(driver: Chrome, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def _by_testid(driver: Chrome, testid: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f"[data-testid={testid}]")


def type_code(driver: Chrome, code: str) -> None:
    """Replace the editor's text by typing `code` into it, as a person would."""
    editor = _by_testid(driver, "code")
    editor.click()
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    for n, line in enumerate(code.split("\n")):
        if n:
            # a new line starts where the editor's indentation puts it: clear that first
            editor.send_keys(Keys.ENTER, Keys.SHIFT, Keys.HOME, Keys.NULL, Keys.DELETE)
        editor.send_keys(line)
    assert _editor_text(driver) == code


def _editor_text(driver: Chrome) -> str:
    lines = driver.find_elements(By.CSS_SELECTOR, "[data-testid=code] .cm-line")
    return "\n".join(str(line.get_attribute("textContent")) for line in lines)


def runs(driver: Chrome) -> list[WebElement]:
    return list(_by_testid(driver, "output").find_elements(By.CSS_SELECTOR, "article.run"))


def last_run(driver: Chrome, count: int) -> WebElement:
    """The newest run once there are `count` of them."""

    def newest() -> WebElement | None:
        found = runs(driver)
        return found[-1] if len(found) >= count else None

    found: WebElement | None = wait_for(driver, newest)
    assert found is not None
    return found


def finished(driver: Chrome, run: WebElement) -> str:
    """Wait for `run` to end; its status."""

    def ended() -> str | None:
        status = run.get_attribute("data-status")
        return None if status == "running" else str(status)

    status: str | None = wait_for(driver, ended)
    assert status is not None
    return status


def printed(run: WebElement) -> str:
    """What the run's cell printed so far (not the echo of its code)."""
    return str(run.find_element(By.CSS_SELECTOR, "[data-testid=stream]").text)


# recorded in every page before its own scripts run: what its policy blocked, uncaught errors
WATCH_PROBLEMS = """
window.__problems = [];
addEventListener("securitypolicyviolation", (e) =>
  __problems.push(`blocked by the policy: ${e.violatedDirective} ${e.blockedURI}`));
addEventListener("error", (e) => __problems.push(`error: ${e.message}`));
addEventListener("unhandledrejection", (e) => __problems.push(`unhandled: ${e.reason}`));
"""


def problems(driver: Chrome) -> list[str]:
    """What the page's policy blocked and the errors it did not handle, since it loaded."""
    return list(driver.execute_script("return window.__problems || ['not watched']"))


# --------------------------------------------------------------------------- the page itself


def test_the_page_and_its_files_are_served_under_a_policy_of_this_origin_only(
    served: RunningServer,
) -> None:
    page = httpx.get(served.base + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # the editor's styles apply only with the nonce this answer was sent with
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'nonce="{nonce}"' in page.text
    assert nonce not in httpx.get(served.base + "/").headers["content-security-policy"]
    assert "http://" not in page.text  # nothing from elsewhere
    assert "https://" not in page.text

    editor = httpx.get(served.base + "/playground/editor.js", headers={"accept-encoding": "gzip"})
    assert editor.status_code == 200
    assert editor.headers["content-encoding"] == "gzip"
    assert editor.headers["content-type"].startswith("text/javascript")
    assert len(gzip.compress(editor.content)) < 160_000  # the page stays small
    refused = httpx.get(
        served.base + "/playground/editor.js", headers={"accept-encoding": "gzip;q=0, identity"}
    )
    assert "content-encoding" not in refused.headers
    assert refused.content == editor.content
    again = httpx.get(
        served.base + "/playground/editor.js", headers={"if-none-match": editor.headers["etag"]}
    )
    assert again.status_code == 304

    missing = httpx.get(served.base + "/playground/../server.py")
    assert missing.status_code == 404
    assert httpx.get(served.base + "/playground/routes.py").status_code == 404


# --------------------------------------------------------------------------- running code


@in_browser
def test_code_typed_into_the_editor_runs_with_the_button(page: Chrome) -> None:
    type_code(page, 'print("hello", 6 * 7)')
    _by_testid(page, "run").click()
    run = last_run(page, 1)
    assert finished(page, run) == "ok"
    assert printed(run) == "hello 42"
    assert problems(page) == []


@in_browser
def test_shift_enter_runs_the_code_and_shows_the_last_value(page: Chrome) -> None:
    type_code(page, "x = 21\nx * 2")
    _by_testid(page, "code").send_keys(Keys.SHIFT, Keys.ENTER)
    run = last_run(page, 1)
    assert finished(page, run) == "ok"
    assert run.find_element(By.CSS_SELECTOR, "[data-testid=result]").text.endswith("42")
    assert _editor_text(page) == "x = 21\nx * 2"  # Shift+Enter ran it, it added no line


@in_browser
def test_output_shows_while_the_cell_still_runs(page: Chrome, served_workspace: Path) -> None:
    marker = served_workspace / f"go-{uuid.uuid4().hex}"
    type_code(
        page,
        "import os, time\n"
        'print("waiting for the marker", flush=True)\n'
        f"while not os.path.exists({marker.name!r}): time.sleep(0.05)\n"
        'print("marker seen")',
    )
    _by_testid(page, "run").click()
    run = last_run(page, 1)
    try:
        wait_for(page, lambda: "waiting for the marker" in printed(run))
        assert run.get_attribute("data-status") == "running"  # the cell waits for us
        assert "marker seen" not in printed(run)
    finally:
        marker.write_text("go")
    assert finished(page, run) == "ok"
    assert printed(run).splitlines() == ["waiting for the marker", "marker seen"]


@in_browser
def test_an_exception_shows_its_traceback(page: Chrome) -> None:
    type_code(page, "def f():\n    return 1 / 0\nf()")
    _by_testid(page, "run").click()
    run = last_run(page, 1)
    assert finished(page, run) == "error"
    traceback = run.find_element(By.CSS_SELECTOR, "[data-testid=traceback]").text
    assert "ZeroDivisionError" in traceback
    assert "return 1 / 0" in traceback
    assert "\x1b[" not in traceback


@in_browser
@pytest.mark.slow  # the kernel's first matplotlib import
def test_a_matplotlib_plot_shows_as_an_image(page: Chrome) -> None:
    type_code(
        page,
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('three points')\n"
        "plt.show()",
    )
    _by_testid(page, "run").click()
    run = last_run(page, 1)
    assert finished(page, run) == "ok"
    image = run.find_element(By.CSS_SELECTOR, "img[data-testid=image]")
    width = wait_for(page, lambda: page.execute_script("return arguments[0].naturalWidth", image))
    assert width > 100  # the PNG arrived and decoded
    assert str(image.get_attribute("src")).startswith("blob:")
    assert problems(page) == []  # nothing the page's policy had to block


@in_browser
def test_interrupt_stops_a_running_cell(page: Chrome) -> None:
    type_code(page, "import time\nprint('sleeping', flush=True)\ntime.sleep(600)")
    _by_testid(page, "run").click()
    run = last_run(page, 1)
    wait_for(page, lambda: "sleeping" in printed(run))
    page.find_element(By.ID, "interrupt").click()
    assert finished(page, run) == "error"
    assert "KeyboardInterrupt" in run.text


# --------------------------------------------------------------------------- sessions


def _session_row(driver: Chrome, session_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f"li.session[data-session='{session_id}']")


def click(driver: Chrome, find: Callable[[], WebElement]) -> None:
    """Click what `find` finds, finding it again if the page redrew it meanwhile."""

    def clicked() -> bool:
        find().click()
        return True

    wait_for(driver, clicked)


def _run_and_result(driver: Chrome, code: str, count: int) -> str:
    type_code(driver, code)
    _by_testid(driver, "run").click()
    run = last_run(driver, count)
    assert finished(driver, run) == "ok", run.text
    return str(run.find_element(By.CSS_SELECTOR, "[data-testid=result]").text)


@in_browser
def test_sessions_are_created_switched_restarted_and_deleted(page: Chrome) -> None:
    name = f"alpha-{uuid.uuid4().hex[:6]}"
    _by_testid(page, "new-session-name").send_keys(name)
    _by_testid(page, "create-session").click()
    wait_for(page, lambda: "current" in str(_session_row(page, name).get_attribute("class")))
    select = _by_testid(page, "session-select")
    assert select.get_attribute("value") == name  # new sessions become the current one

    assert _run_and_result(page, f"who = {name!r}\nwho", 1).endswith(repr(name))
    assert page.find_elements(By.CSS_SELECTOR, f"article.run[data-session='{name}']")

    # switch to default with the selector (it is there before its kernel starts): no variable
    click(page, lambda: select.find_element(By.CSS_SELECTOR, "option[value='default']"))
    wait_for(page, lambda: select.get_attribute("value") == "default")
    assert _run_and_result(page, "'who' in globals()", 2).endswith("False")

    # and back with the session's own button: it is there
    click(page, lambda: _session_row(page, name).find_element(By.CSS_SELECTOR, "[data-action=use]"))
    wait_for(page, lambda: select.get_attribute("value") == name)
    assert _run_and_result(page, "who", 3).endswith(repr(name))

    # a restart gives the session a fresh kernel
    pid = _session_row(page, name).get_attribute("data-pid")
    click(
        page,
        lambda: _session_row(page, name).find_element(By.CSS_SELECTOR, "[data-action=restart]"),
    )
    wait_for(page, lambda: _session_row(page, name).get_attribute("data-pid") != pid)
    assert _run_and_result(page, "'who' in globals()", 4).endswith("False")

    # delete asks once more: the first click arms the button, the second deletes
    delete = _session_row(page, name).find_element(By.CSS_SELECTOR, "[data-action=delete]")
    delete.click()
    wait_for(page, lambda: delete.text == "Sure?")
    delete.click()
    wait_for(page, lambda: not page.find_elements(By.CSS_SELECTOR, f"li[data-session='{name}']"))
    # the list's periodic refresh may drop the row a moment before the page moves to 'default'
    wait_for(page, lambda: select.get_attribute("value") == "default")


# --------------------------------------------------------------------------- files


def _file_row(driver: Chrome, path: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f"#file-list li[data-path='{path}']")


@in_browser
def test_files_are_uploaded_downloaded_and_deleted(
    page: Chrome, served_workspace: Path, downloads: Path, tmp_path: Path
) -> None:
    name = f"data-{uuid.uuid4().hex[:6]}.bin"
    data = bytes(range(256)) * 40 + "é ∑\n".encode()  # binary, not valid UTF-8
    local = tmp_path / name
    local.write_bytes(data)
    workspace = served_workspace

    _by_testid(page, "tab-files").click()
    _by_testid(page, "upload").send_keys(str(local))
    wait_for(page, lambda: _file_row(page, name))
    assert (workspace / name).read_bytes() == data

    click(
        page, lambda: _file_row(page, name).find_element(By.CSS_SELECTOR, "[data-action=download]")
    )
    saved = downloads / name
    wait_for(page, lambda: saved.exists() and saved.read_bytes() == data)

    delete = _file_row(page, name).find_element(By.CSS_SELECTOR, "[data-action=delete]")
    delete.click()
    wait_for(page, lambda: delete.text == "Sure?")
    delete.click()
    wait_for(page, lambda: not page.find_elements(By.CSS_SELECTOR, f"li[data-path='{name}']"))
    assert not (workspace / name).exists()


@in_browser
def test_the_health_panel_lists_the_kernels(page: Chrome) -> None:
    _run_and_result(page, "1 + 1", 1)
    _by_testid(page, "tab-health").click()
    health = _by_testid(page, "health")
    wait_for(page, lambda: "Kernels" in health.text)
    assert "default" in health.text
    assert "Host" in health.text
    assert "Workspace" in health.text


# --------------------------------------------------------------------------- the token


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workspace = tmp_path_factory.mktemp("guarded") / "workspace"
    workspace.mkdir()
    with http_server(workspace, "--auth-token", TOKEN) as server:
        yield server


def test_behind_a_token_the_page_loads_without_it_and_the_api_does_not(
    config: ServerConfig,
) -> None:
    with threaded_http_server(replace(config, auth_token=TOKEN)) as base:
        # the page and its files hold no data, and a browser cannot send a header to open a page
        for path in ("/", "/playground/app.js", "/playground/editor.js", "/health"):
            assert httpx.get(base + path).status_code == 200, path
        assert httpx.get(base + "/playground/secret.txt").status_code == 401
        assert httpx.post(base + "/execute", json={"name": "ping"}).status_code == 401
        assert httpx.get(base + "/tools").status_code == 401
        assert httpx.get(base + "/mcp").status_code == 401


def test_with_the_mcp_endpoint_at_the_root_the_playground_steps_aside(
    config: ServerConfig,
) -> None:
    with threaded_http_server(replace(config, path="/", auth_token=TOKEN)) as base:
        assert httpx.get(base + "/").status_code == 401  # the MCP endpoint, still guarded
        assert httpx.get(base + "/playground/app.js").status_code == 401
        page = httpx.get(base + "/playground/app.js", headers={"authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 404


@in_browser
def test_behind_a_token_the_page_asks_for_it_and_refuses_a_wrong_one(
    browser: Chrome, guarded: RunningServer
) -> None:
    browser.get(guarded.base + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(guarded.base + "/")
    dialog = _by_testid(browser, "token-dialog")
    wait_for(browser, dialog.is_displayed)
    _by_testid(browser, "token-input").send_keys("not-the-token")
    _by_testid(browser, "token-submit").click()
    error = _by_testid(browser, "token-error")
    wait_for(browser, lambda: "refused" in error.text)
    assert dialog.is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0

    token_input = _by_testid(browser, "token-input")
    token_input.clear()
    token_input.send_keys(TOKEN)
    _by_testid(browser, "token-submit").click()
    wait_for(browser, lambda: not dialog.is_displayed())
    kept = browser.execute_script("return Object.values(sessionStorage)")
    assert TOKEN in kept
    assert browser.execute_script("return localStorage.length") == 0
    assert TOKEN not in str(browser.get_cookies())

    assert _run_and_result(browser, "40 + 2", 1).endswith("42")
