"""
The ``ecr_docker`` connection made where users make it: Airflow's own UI, in a real browser.

For each Airflow virtualenv (by default the locked ``.venvs/af3`` and ``.venvs/af2``;
``AIRFLOW_ECR_UI_VENVS=<venv>:<venv>`` replaces the list, for the compatibility matrix's cells):

1. start the UI on loopback: ``airflow api-server`` with the simple auth manager (everyone is
   admin) on Airflow 3, ``airflow webserver`` with a FAB admin user on Airflow 2;
2. drive it with Debian's Chromium through chromedriver (selenium, nothing downloaded): open
   "add connection", pick "Docker (Amazon ECR)", check that the provider's extra fields show and
   the unused standard fields do not, fill the conn id and ``aws_conn_id``, screenshot the filled
   form, save;
3. read the stored connection back with ``airflow connections get``;
4. run ``tests/ui/dags/ecr_ui_connection.py`` with ``airflow dags test``: its operator names only
   ``docker_conn_id="ecr_ui"``, so the AWS connection must come from the form's extra.

The screenshot of the filled form is kept in the test's tmp dir; with
``AIRFLOW_ECR_UPDATE_SCREENSHOTS=1`` it also replaces ``docs/img/connection-form-af<major>.png``.
On a failed browser step the test saves a screenshot and the page source and names them, with
the end of the UI server's log, in the assertion message.

Run: ``AIRFLOW_ECR_LAB_DIR=/tmp/airflow-ecr-lab pytest tests/ui`` (needs ``scripts/setup-debian.sh``
for chromium and chromium-driver, and a lab).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from airflow_ecr.provider_info import ECR_CONNECTION_FIELDS, ECR_CONNECTION_HIDDEN_FIELDS
from airflow_ecr.testing import EmulatorClient
from helpers.airflow_harness import REPO, AirflowHarness, SchedulerSession, Started, airflow_version, find_venv
from helpers.processes import free_port

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(360)]

DAG_FILE = Path(__file__).resolve().parent / "dags" / "ecr_ui_connection.py"
DAG_ID = "ecr_ui_connection"
MARKER = "hello-from-the-ui-connection"  # what the DAG's container prints
CONN_ID = "ecr_ui"
HOOK_NAME = "Docker (Amazon ECR)"
AWS_CONN_ID = "aws_lab"  # the harness's AWS connection to the ECR emulator
# The standard fields an ecr_docker connection hides (provider_info's ui-field-behaviour; extra is
# not a labelled input on every form).
HIDDEN_LABELS = tuple(name.capitalize() for name in ECR_CONNECTION_HIDDEN_FIELDS if name != "extra")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1300",
)
WAIT = 30.0  # seconds any one element may take to appear or change
UPDATE_SCREENSHOTS = "AIRFLOW_ECR_UPDATE_SCREENSHOTS"


# -- which Airflow installations ------------------------------------------------------------------
def ui_venvs() -> list[Any]:
    """``$AIRFLOW_ECR_UI_VENVS`` (colon separated), else the locked Airflow 3 and 2 venvs; one
    pytest param each, named by the Airflow version it holds."""
    override = os.environ.get("AIRFLOW_ECR_UI_VENVS")
    if override:
        venvs: list[Path | str] = [Path(p).absolute() for p in override.split(":") if p]
    else:
        venvs = [find_venv(v) or f"no Airflow {v} virtualenv (scripts/venvs.sh {v})" for v in ("3", "2")]
    params = []
    for venv in venvs:
        try:
            label = f"af{airflow_version(venv)}" if isinstance(venv, Path) else venv
        except (OSError, RuntimeError):
            label = f"no Airflow in {venv}"
        params.append(pytest.param(venv, id=label))
    return params


@pytest.fixture(params=ui_venvs())
def ui_harness(request: pytest.FixtureRequest, e2e_lab: dict[str, Any], tmp_path: Path) -> AirflowHarness:
    """A fresh AIRFLOW_HOME (migrated) for the param's venv, holding only the UI test's DAG."""
    venv = request.param
    if not isinstance(venv, Path) or not (venv / "bin" / "airflow").exists():
        pytest.fail(f"cannot run the UI test: {venv}", pytrace=False)
    harness = AirflowHarness(venv, tmp_path / "airflow-home", e2e_lab, Path(e2e_lab["dir"]), dag_files=[])
    shutil.copy2(DAG_FILE, harness.dags_folder / DAG_FILE.name)
    harness.migrate()
    return harness


# -- the UI server --------------------------------------------------------------------------------
class AirflowUi:
    """
    Airflow's web UI for one harness, on a free loopback port, stopped by pid on exit.

    Airflow 3: ``airflow api-server`` with the simple auth manager, every user an admin (no
    login). Airflow 2: ``airflow webserver`` (FAB auth) after ``airflow users create`` of an admin
    whose credentials are :attr:`username` / :attr:`password`.
    """

    def __init__(self, harness: AirflowHarness) -> None:
        self.harness = harness
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = "admin"
        self.password = secrets.token_urlsafe(16)
        self.session = SchedulerSession(harness, harness.env(extra=self._settings()), self.port, access_key="")

    def _settings(self) -> dict[str, str]:
        if self.harness.major >= 3:
            return {
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
            }
        return {
            "AIRFLOW__WEBSERVER__BASE_URL": self.url,
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(32),
        }

    def __enter__(self) -> AirflowUi:
        try:
            if self.harness.major >= 3:
                self.session.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(self.port))
                self.wait_until_up("/api/v2/monitor/health")
            else:
                self._create_admin()
                self.session.start("webserver", "webserver", "-H", "127.0.0.1", "-p", str(self.port))
                self.wait_until_up("/health")
        except BaseException:
            self.session.stop(grace=5)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.stop(grace=10)

    def _create_admin(self) -> None:
        result = self.harness.run_cli(
            # --password=...: a random password may start with "-", which argparse takes for an option.
            *("users", "create", "--role", "Admin", "--username", self.username, f"--password={self.password}"),
            *("--firstname", "UI", "--lastname", "Test", "--email", "ui-test@example.com"),
            env=self.session.env,
        )
        assert result.returncode == 0, f"airflow users create failed:\n{result.stdout[-4000:]}"

    def wait_until_up(self, path: str, timeout: float = 120.0) -> None:
        """Until ``GET path`` answers 200 (the server's process must stay alive meanwhile)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.session.check_alive()
            with contextlib.suppress(OSError), opener.open(self.url + path, timeout=5) as response:
                if response.status == 200:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"the Airflow UI did not answer {path} within {timeout} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.session.diagnostics() if self.session.processes else "(no UI process started)"

    def full_log(self) -> str:
        return "\n".join(process.tail(10**8) for process in self.session.processes)


# -- the browser ----------------------------------------------------------------------------------
@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """Debian's Chromium, headless, through Debian's chromedriver (Selenium Manager never runs:
    both paths are given). chromedriver runs in its own process group, stopped by its pid."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: bash scripts/setup-debian.sh", pytrace=False)
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    log = tmp_path / "chromedriver.log"
    service = Service(CHROMEDRIVER, log_output=str(log), popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=options)
    process = Started("chromedriver", service.process, log)
    try:
        yield driver
    finally:
        with contextlib.suppress(WebDriverException):
            driver.quit()
        process.stop(grace=5)  # whatever quit() left of chromedriver's group (chromium)


class Page:
    """The browser on the UI, with explicit waits and evidence when a step fails."""

    def __init__(self, driver: WebDriver, ui: AirflowUi, evidence_dir: Path) -> None:
        self.driver = driver
        self.ui = ui
        self.evidence_dir = evidence_dir
        self.wait = WebDriverWait(driver, WAIT)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """On any failure inside: screenshot + page source saved, named in an AssertionError."""
        try:
            yield
        except Exception as err:
            # A WebDriverException's str() carries chromedriver's native stack: keep its message only.
            detail = err.msg if isinstance(err, WebDriverException) else str(err)
            name = re.sub(r"\W+", "-", what).strip("-")
            shot = self.evidence_dir / f"failed-{name}.png"
            source = self.evidence_dir / f"failed-{name}.html"
            url = "?"
            with contextlib.suppress(WebDriverException):
                url = self.driver.current_url
                self.driver.save_screenshot(str(shot))
                source.write_text(self.driver.page_source)
            raise AssertionError(
                f"UI step {what!r} failed on Airflow {self.ui.harness.version}: {type(err).__name__}: {detail}\n"
                f"url: {url}\nscreenshot: {shot}\npage source: {source}\n"
                f"--- UI server log (end) ---\n{self.ui.log_tail()}"
            ) from None

    def visible(self, by: str, selector: str) -> WebElement:
        return self.wait.until(ec.visibility_of_element_located((by, selector)), f"nothing visible at {selector}")

    def clickable(self, by: str, selector: str) -> WebElement:
        return self.wait.until(ec.element_to_be_clickable((by, selector)), f"nothing clickable at {selector}")

    def field(self, label: str) -> WebElement:
        """The visible input a label names: the input of the label's closest container that has one
        (the field group on Airflow 3, the table row on Airflow 2), as a user reads the form."""
        return self.visible(By.XPATH, f"//label[normalize-space()='{label}']/ancestor::*[.//input][1]//input")

    def visible_labels(self, container: WebElement) -> set[str]:
        return {" ".join(e.text.split()) for e in container.find_elements(By.TAG_NAME, "label") if e.is_displayed()}


# -- the two UIs ----------------------------------------------------------------------------------
def open_form_af3(page: Page) -> WebElement:
    """Connections -> "Add Connection" -> pick the type in the react-select; extra fields shown."""
    page.driver.get(page.ui.url + "/connections")
    page.clickable(By.XPATH, "//button[normalize-space()='Add Connection']").click()
    dialog = page.visible(By.CSS_SELECTOR, "[role=dialog]")
    dialog.find_element(By.NAME, "connection_id").send_keys(CONN_ID)
    combobox = dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    combobox.send_keys(HOOK_NAME)
    page.visible(By.XPATH, f"//*[@role='option'][normalize-space()='{HOOK_NAME}']")
    combobox.send_keys(Keys.ENTER)
    # The provider's conn-fields sit in the (closed) "Extra Fields" accordion item.
    page.clickable(By.XPATH, "//button[@data-part='item-trigger'][normalize-space()='Extra Fields']").click()
    return dialog


def save_af3(page: Page, dialog: WebElement) -> None:
    page.clickable(By.XPATH, "//*[@role='dialog']//button[normalize-space()='Save']").click()
    page.wait.until(ec.staleness_of(dialog), "the dialog stayed open after Save")
    page.visible(By.XPATH, f"//table//td[normalize-space()='{CONN_ID}']")


def open_form_af2(page: Page) -> WebElement:
    """/connection/add -> the FAB login form -> pick the type in the select2 box."""
    page.driver.get(page.ui.url + "/connection/add")
    page.visible(By.ID, "username").send_keys(page.ui.username)
    page.driver.find_element(By.ID, "password").send_keys(page.ui.password)
    page.driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    page.visible(By.ID, "conn_id").send_keys(CONN_ID)
    page.clickable(By.CSS_SELECTOR, "#conn_type + .select2 .select2-selection").click()
    search = page.visible(By.CSS_SELECTOR, ".select2-container--open .select2-search__field")
    search.send_keys(HOOK_NAME)
    page.visible(By.XPATH, f"//li[contains(@class, 'select2-results__option')][normalize-space()='{HOOK_NAME}']")
    search.send_keys(Keys.ENTER)
    return page.driver.find_element(By.XPATH, "//form[.//*[@id='conn_id']]")


def save_af2(page: Page, form: WebElement) -> None:
    form.find_element(By.XPATH, ".//button[@type='submit'][normalize-space()='Save']").click()
    page.wait.until(ec.staleness_of(form), "the form stayed after Save")
    page.visible(By.XPATH, "//*[contains(@class, 'alert')][contains(normalize-space(), 'Added Row')]")


def stored_connection(harness: AirflowHarness) -> dict[str, Any]:
    """``airflow connections get CONN_ID -o json`` (warnings may precede the JSON)."""
    result = harness.run_cli("connections", "get", CONN_ID, "-o", "json")
    assert result.returncode == 0, f"airflow connections get {CONN_ID} failed:\n{result.stdout[-4000:]}"
    start = result.stdout.find("[{")
    assert start >= 0, f"no JSON in:\n{result.stdout[-4000:]}"
    rows, _ = json.JSONDecoder().raw_decode(result.stdout[start:])
    return dict(rows[0])


# -- the test -------------------------------------------------------------------------------------
def test_connection_form_to_dag_run(
    ui_harness: AirflowHarness,
    browser: WebDriver,
    ecr_admin: EmulatorClient,
    e2e_lab: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Make the ecr_docker connection in the UI; a DAG naming only that connection pulls from ECR."""
    harness = ui_harness
    major = harness.major
    screenshot = tmp_path / f"connection-form-af{major}.png"
    timings: dict[str, float] = {}
    started = time.monotonic()

    with AirflowUi(harness) as ui:
        timings["ui up"] = time.monotonic() - started
        page = Page(browser, ui, tmp_path)
        with page.step("open the add-connection form"):
            form = open_form_af3(page) if major >= 3 else open_form_af2(page)
        with page.step("check the form's fields"):
            for label in ECR_CONNECTION_FIELDS.values():
                page.field(label)
            shown = page.visible_labels(form)
            assert not shown & set(HIDDEN_LABELS), f"fields the connection type hides are shown: {sorted(shown)}"
        with page.step("fill the form"):
            page.field(ECR_CONNECTION_FIELDS["aws_conn_id"]).send_keys(AWS_CONN_ID)
            assert page.field(ECR_CONNECTION_FIELDS["aws_conn_id"]).get_attribute("value") == AWS_CONN_ID
            browser.execute_script("document.activeElement.blur()")  # no text cursor in the picture
            form.screenshot(str(screenshot))
        with page.step("save the connection"):
            if major >= 3:
                save_af3(page, form)
            else:
                save_af2(page, form)
        timings["browser"] = time.monotonic() - started - timings["ui up"]

    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        shutil.copy2(screenshot, REPO / "docs" / "img" / screenshot.name)

    conn = stored_connection(harness)
    assert conn["conn_type"] == "ecr_docker", conn
    extra = conn.get("extra_dejson") or json.loads(conn.get("extra") or "{}")
    assert extra.get("aws_conn_id") == AWS_CONN_ID, conn
    assert not {k for k, v in extra.items() if v not in (None, "")} - {"aws_conn_id"}, conn

    dag_started = time.monotonic()
    result = harness.dags_test(DAG_ID)
    timings["dags test"] = time.monotonic() - dag_started
    account = e2e_lab["accounts"][0]["account_id"]
    password = ecr_admin.password(account)

    assert result.rc == 0, result.describe()
    printed = [line for line in result.all_text().splitlines() if MARKER in line and "echo" not in line]
    assert printed, f"the container's output is missing: {result.describe()}"
    # The token was fetched with aws_lab (this run's unique access key): the form's extra was used.
    calls = ecr_admin.calls(access_key=result.access_key)
    assert [(c["registry_ids"], c["outcome"]) for c in calls] == [([account], "ok")], calls
    assert len(password) >= 16, "the emulator handed out a suspiciously short password"
    texts = {"dags test output": result.output, **result.logs, "UI server log": ui.full_log()}
    leaks = [where for where, text in texts.items() if password in text]
    assert not leaks, f"the ECR token appears in: {leaks}"
    print(f"Airflow {harness.version}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
