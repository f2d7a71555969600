"""The dashboard page, rendered by real headless Chromium against the ops API served by uvicorn
on a loopback port, over a ledger seeded with known jobs (ops_seed).

Chromium is Debian's `chromium` package, driven by `--dump-dom` to read the rendered page and
by selenium through Debian's `chromium-driver` to click (.ci/run installs both). Without them
the tests are skipped locally, and fail in CI (ETL_REQUIRE_POSTGRES=1), where they must run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from ops_seed import C_ERROR, free_port, seed_ledger

from etl_assets.config import Settings
from etl_assets.db import create_engine, utcnow
from etl_assets.ledger.schema import jobs
from etl_assets.ops.api import create_app

VIEWER, OPERATOR = "dash-viewer", "dash-operator"
UI = "http://dagster.test:3000"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require(program: str | None, package: str) -> str:
    """The program's path; skip without it (fail in CI, where the dashboard must be tested)."""
    if program is None:
        reason = f"Debian's {package} is not installed (apt-get install -y {package})"
        if os.environ.get("ETL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CI needs the dashboard tests, but {reason}")
        pytest.skip(reason)
    return program


@pytest.fixture
def chromium() -> str:
    return require(CHROMIUM, "chromium")


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium under selenium, with Debian's chromedriver (no driver download)."""
    driver_path = require(CHROMEDRIVER, "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in [*HEADLESS, f"--user-data-dir={tmp_path / 'selenium-profile'}"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@dataclasses.dataclass
class Served:
    base_url: str
    ids: dict[str, str]
    database_url: str


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[Served]:
    """The ops API on a free loopback port, in a thread, over the seeded ledger."""
    engine = create_engine(sqlite_url)
    ids = seed_ledger(engine, utcnow())
    with engine.begin() as conn:  # a title that would be markup if the page used innerHTML
        conn.execute(
            sa.update(jobs).where(jobs.c.job_id == ids["C"]).values(title="<b>north</b> Q1")
        )
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=sqlite_url,
        ops_api_viewer_tokens=VIEWER,
        ops_api_operator_tokens=OPERATOR,
        dagster_ui_url=UI,
    ).resolved()
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, engine=engine), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield Served(f"http://127.0.0.1:{port}", ids, sqlite_url)
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def render(chromium: str, url: str, tmp_path: Path) -> str:
    """The DOM after the page's scripts ran (virtual time lets its fetches finish)."""
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [
            chromium,
            *HEADLESS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def section(dom: str, element_id: str) -> str:
    """The markup of the element with this id (up to its section's end)."""
    start = dom.index(f'id="{element_id}"')
    return dom[start : dom.index("</section>", start)]


def test_the_dashboard_renders_counts_failures_and_links(
    chromium: str, served: Served, tmp_path: Path
) -> None:
    dom = render(chromium, f"{served.base_url}/dashboard?token={VIEWER}", tmp_path)
    counts = section(dom, "counts")
    for status, n in [("pending", 3), ("processing", 2), ("completed", 3), ("failed", 2)]:
        assert f'data-status="{status}"><span class="n">{n}</span>' in counts, status
    failures = section(dom, "failures")
    assert C_ERROR in failures  # the reason of the recent failure
    assert f'href="#job/{served.ids["C"]}"' in failures  # link to the job
    assert f'href="{UI}/runs/run-c"' in failures  # and to its Dagster run
    assert "&lt;b&gt;north&lt;/b&gt; Q1" in failures  # user text is text, never markup
    stuck = section(dom, "stuck")
    assert f'href="#job/{served.ids["E"]}"' in stuck
    queue = section(dom, "queue")
    assert "<td>10</td><td>1</td><td>1</td>" in queue
    assert "<td>0</td><td>2</td><td>1</td>" in queue
    rate = section(dom, "rate-chart")
    assert rate.count('class="rate"') == 144  # one bar per 10 minutes over 24 h
    assert "297 rows loaded" in rate
    assert "2 of 4 attempts failed" in section(dom, "error-chart")
    uploads = section(dom, "uploads")
    assert "500 / 1000" in uploads
    # The bar's width is set through the CSSOM: the CSP refuses inline style attributes.
    assert 'style="width: 50%;"' in uploads
    assert "11 jobs; 1 stuck; 3 pending; 2 alert(s) firing" in dom
    alerts = section(dom, "alerts")
    assert "failure_rate" in alerts and "stuck_jobs" in alerts
    assert "1 of 2 jobs finished in the last hour failed" in alerts


def test_the_job_view_shows_the_error_attempts_and_run(
    chromium: str, served: Served, tmp_path: Path
) -> None:
    job_id = served.ids["C"]
    dom = render(chromium, f"{served.base_url}/dashboard?token={OPERATOR}#job/{job_id}", tmp_path)
    panel = section(dom, "job-panel")
    assert f"Job {job_id}" in panel
    assert f"permanent: {C_ERROR}" in panel
    assert f'href="{UI}/runs/run-c"' in panel
    assert 'id="retry-button"' in panel  # a failed job can be retried from here
    assert "secret frame" in panel  # operators see the traceback


def test_without_a_token_the_page_asks_for_one(
    chromium: str, served: Served, tmp_path: Path
) -> None:
    dom = render(chromium, f"{served.base_url}/dashboard", tmp_path)
    assert "Paste a viewer or operator token" in dom
    assert C_ERROR not in dom
    wrong = render(chromium, f"{served.base_url}/dashboard?token=wrong", tmp_path / "second")
    assert "Cannot load: 401: unknown bearer token" in wrong


def test_the_page_is_packaged_and_needs_no_internet() -> None:
    page = resources.files("etl_assets.ops").joinpath("static/dashboard.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script src" not in page and "@import" not in page


def test_an_operator_retries_a_failed_job_from_the_dashboard(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    job_id = served.ids["C"]
    browser.get(f"{served.base_url}/dashboard?token={OPERATOR}#job/{job_id}")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: b.find_elements(By.ID, "retry-button"))
    browser.find_element(By.ID, "retry-button").click()
    wait.until(lambda b: "pending again" in b.find_element(By.ID, "status").text)
    wait.until(lambda b: "pending" in b.find_element(By.ID, "job-detail").text.split("\n")[0])
    assert "attempts 1 of 4" in browser.find_element(By.ID, "job-detail").text
    assert "token" not in browser.current_url  # moved out of the address bar

    # A run picks it up and completes it: the open job view follows, without a reload.
    engine = create_engine(served.database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(status="completed", completed_at=utcnow(), error_type=None)
        )
    engine.dispose()
    refreshed = WebDriverWait(browser, 45)  # the page refreshes every 15 s
    refreshed.until(
        lambda b: "completed" in b.find_element(By.ID, "job-detail").text.split("\n")[0]
    )
    assert not browser.find_elements(By.ID, "retry-button")  # nothing left to retry


def test_a_viewer_is_told_it_may_not_retry(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served.base_url}/dashboard?token={VIEWER}#job/{served.ids['C']}")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: b.find_elements(By.ID, "retry-button"))
    browser.find_element(By.ID, "retry-button").click()
    wait.until(lambda b: "403" in b.find_element(By.ID, "status").text)
    assert "needs an operator token" in browser.find_element(By.ID, "status").text
