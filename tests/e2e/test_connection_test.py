"""
The UI's **Test** button for an ``ecr_docker`` connection, through the REST API's connection-test
endpoint of a real server: ``POST /api/v2/connections/test`` on ``airflow api-server -H 127.0.0.1``
(Airflow 3, simple auth manager) and ``POST /api/v1/connections/test`` on ``airflow webserver``
bound to 127.0.0.1 (Airflow 2.11, basic auth), both with ``[core] test_connection = Enabled``.

One server start per Airflow version; against it one green case (the lab's registry: a token from
the emulator, the lab's daemon logging in to the registry by its real name) and one failing case (a
region the account has no registry in), each answered in one line. The token is in neither answer.

Run: ``AIRFLOW_ECR_LAB_DIR=/tmp/lab-x pytest tests/e2e/test_connection_test.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_ecr.testing.emulator import EmulatorClient
from helpers.airflow_harness import AirflowHarness, SchedulerSession, new_access_key
from helpers.processes import free_port

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

ACCOUNT = "111111111111"
REGION = "eu-west-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@contextlib.contextmanager
def rest_server(airflow: AirflowHarness, access_key: str) -> Iterator[Any]:
    """The version's REST server with connection tests enabled; yields ``post(path, body) -> (status, body)``."""
    port = free_port()
    extra = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    if airflow.major >= 3:
        extra.update({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin", "AIRFLOW__API__WORKERS": "1"})
    else:
        extra.update(
            {
                "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
                "AIRFLOW__WEBSERVER__WORKERS": "1",
                "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_urlsafe(16),
                "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
            }
        )
    session = SchedulerSession(airflow, airflow.env(extra=extra, access_key=access_key), port, access_key)
    try:
        if airflow.major >= 3:
            session.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port))
            session.wait_api()
            yield lambda path, body: session._request("POST", path, body)
        else:
            password = create_admin(airflow, session.env)
            session.start("webserver", "webserver", "-H", "127.0.0.1", "-p", str(port))
            wait_http(session, f"http://127.0.0.1:{port}/health")
            basic = base64.b64encode(f"admin:{password}".encode()).decode()
            yield lambda path, body: post_json(f"http://127.0.0.1:{port}{path}", body, f"Basic {basic}")
    finally:
        session.stop()


def create_admin(airflow: AirflowHarness, env: dict[str, str]) -> str:
    """An Airflow 2 admin user; its password goes through the environment, never argv."""
    password = secrets.token_urlsafe(16)
    code = (
        "import os\n"
        "from airflow.cli import cli_parser\n"
        "args = cli_parser.get_parser().parse_args(['users', 'create', '--username', 'admin', '--firstname', 'a',"
        " '--lastname', 'b', '--role', 'Admin', '--email', 'admin@example.com',"
        " '--password', os.environ['ECR_TEST_ADMIN_PASSWORD']])\n"
        "args.func(args)\n"
    )
    done = subprocess.run(
        [str(airflow.venv / "bin" / "python"), "-"],
        input=code,
        env={**env, "ECR_TEST_ADMIN_PASSWORD": password},
        cwd=airflow.home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return password


def wait_http(session: SchedulerSession, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.check_alive()
        with contextlib.suppress(OSError), _NO_PROXY.open(url, timeout=5):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{session.diagnostics()}")


def post_json(url: str, body: Any, authorization: str) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http:// URL this module built
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": authorization},
        method="POST",
    )
    try:
        with _NO_PROXY.open(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def ecr_docker(region: str) -> dict[str, Any]:
    """The form's content: an ``ecr_docker`` connection to the lab's account in ``region``."""
    extra = {"aws_conn_id": "aws_lab", "registry_id": ACCOUNT, "region_name": region}
    return {"connection_id": "ecr_test", "conn_type": "ecr_docker", "extra": json.dumps(extra)}


def test_the_test_button(airflow: AirflowHarness, emulator: EmulatorClient, e2e_lab: dict[str, Any]) -> None:
    airflow.migrate()
    access_key = new_access_key()
    path = "/api/v2/connections/test" if airflow.major >= 3 else "/api/v1/connections/test"
    with rest_server(airflow, access_key) as post:
        green = post(path, ecr_docker(REGION))
        failing = post(path, ecr_docker("eu-west-3"))
    assert green[0] == 200, green
    assert green[1]["status"] is True, green
    assert green[1]["message"] == (
        f"ECR granted a token for {HOST} to aws_conn_id='aws_lab', and the Docker daemon at "
        f"{e2e_lab['docker_host']} logged in to it."
    ), green
    assert failing[0] == 200 and failing[1]["status"] is False, failing
    message = failing[1]["message"]
    assert message.startswith(
        f"ECR permission failed: ECR refused the request for registry {ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com "
        "with aws_conn_id='aws_lab': "
    ), message
    assert message.endswith(
        f"Fix: check the account id ({ACCOUNT}) and region (eu-west-3) in the connection's registry_id and "
        f"region_name (or its host): they must be those of the registry the image was pushed to (its host "
        f"{ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com)."
    ), message
    assert "\n" not in message
    # The server really asked ECR, once per test, with its own AWS connection.
    calls = emulator.calls(access_key=access_key)
    assert [(c["target"].rsplit(".", 1)[1], c["region"]) for c in calls] == [
        ("GetAuthorizationToken", REGION),
        ("GetAuthorizationToken", "eu-west-3"),
    ]
    password = emulator.password(ACCOUNT)
    answers = json.dumps([green, failing])
    for secret in (password, base64.b64encode(f"AWS:{password}".encode()).decode()):
        assert secret not in answers, "the ECR token is in the answer"
