"""Docker Hub official images through the lab's emulated ECR pull-through cache (``[ecr] pull_through_cache``).

The lab's first account holds ``docker-hub/library/busybox:1.36`` and ``docker-hub/library/python:3.11``
(stand-ins: the lab's own images, see ``airflow_ecr_lab.spec.PULL_THROUGH_IMAGES``); tasks
name them as Docker Hub does and the real daemon pulls them from the cache by their ECR name, with a
token the registry checks. In-process tests drive the operators; the DAG test runs real Airflow 3
and 2.11 with the option set only through ``AIRFLOW__ECR__PULL_THROUGH_CACHE``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

import docker
import pytest

from airflow_ecr import process_state
from airflow_ecr.exceptions import EcrImageNotFoundError
from airflow_ecr.hooks.pull_errors import FIRST_PULL_ACTIONS
from airflow_ecr.images.record import XCOM_KEY
from airflow_ecr.operators.docker import EcrDockerOperator, EcrDockerSwarmOperator
from airflow_ecr.operators.images import EcrPinImagesOperator
from helpers.airflow_harness import AirflowHarness
from helpers.task_instance import RecordingTI

pytestmark = [pytest.mark.lab, pytest.mark.timeout(420)]

CONN = "aws_lab"  # the `aws` fixture (tests/conftest.py)
DAG = "ecr_pull_through"  # tests/e2e/dags/ecr_pull_through.py
NEVER_IMPORTED = "docker.io/library/busybox:1.37"  # not in the stand-in cache: a first pull it cannot import


@pytest.fixture
def cache(lab, monkeypatch) -> dict[str, Any]:
    """The lab's pull-through cache rule, configured as a deployment would (``AIRFLOW__ECR__PULL_THROUGH_CACHE``)."""
    rule = lab.raw.get("pull_through_cache")
    if rule is None:
        pytest.fail("this lab predates its pull-through cache: restart it (lab down, lab up)", pytrace=False)
    monkeypatch.setenv("AIRFLOW__ECR__PULL_THROUGH_CACHE", rule["option"])
    return dict(rule)


@pytest.fixture
def task_log(capfd, caplog):
    """
    How many times the task log so far has a line: structlog (Airflow 3) prints it, stdlib logging
    (Airflow 2) records it and prints it too, so each source is counted on its own.
    """
    caplog.set_level(logging.INFO)
    printed: list[str] = []

    def times(line: str) -> int:
        printed.append(capfd.readouterr().out)
        return max("".join(printed).count(line), caplog.text.count(line))

    return times


def forget(lab, *images: str) -> None:
    client = docker.APIClient(base_url=lab.docker_host)
    for image in images:
        with contextlib.suppress(docker.errors.NotFound):
            client.remove_image(image, force=True)


def run(lab, image: str, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Execute one EcrDockerOperator as a task would; returns (its return value, its XComs)."""
    process_state.reset()
    ti = RecordingTI()
    defaults: dict[str, Any] = {"aws_conn_id": CONN, "docker_url": lab.docker_host, "network_mode": "none"}
    op = EcrDockerOperator(
        task_id=f"t{uuid.uuid4().hex[:6]}", image=image, **{**defaults, "auto_remove": "success", **kwargs}
    )
    return op.execute({"ti": ti}), ti.xcom


def test_an_official_image_is_pulled_through_the_cache_and_both_names_recorded(lab, aws, cache, task_log):
    cached = f"{cache['cache']}/library/busybox:1.36"
    forget(lab, cached)
    result, xcom = run(lab, "busybox:1.36", force_pull=True, command=["echo", "through the cache"])
    record = xcom[XCOM_KEY]
    assert result == "through the cache"
    assert record == {
        **record,
        "image": cached,
        "requested": "busybox:1.36",
        "registry": lab.account()["host"],
        "repository": "docker-hub/library/busybox",
        "tag": "1.36",
        "pulled": True,
    }
    assert record["digest"] and record["reference"] == f"{cache['cache']}/library/busybox@{record['digest']}"
    line = f"Pulling busybox:1.36 through the ECR pull-through cache as {cached} ([ecr] pull_through_cache)."
    assert task_log(line) == 1
    # The daemon really pulled it from the cache (a token the registry checked), by its ECR name.
    assert record["reference"] in docker.APIClient(base_url=lab.docker_host).inspect_image(cached)["RepoDigests"]
    assert [c["outcome"] for c in aws.calls()] == ["ok"]


def test_pins_and_resolved_digests_go_through_the_cache_too(lab, aws, cache, task_log):
    pins = EcrPinImagesOperator(task_id="pin", images=["library/busybox:1.36"], aws_conn_id=CONN).execute({})
    cached = f"{cache['cache']}/library/busybox:1.36"
    assert list(pins) == [cached] and pins[cached]["image"] == "library/busybox:1.36"
    _, xcom = run(lab, "index.docker.io/busybox:1.36", pinned_images=pins, force_pull=True, command=["true"])
    assert (xcom[XCOM_KEY]["digest"], xcom[XCOM_KEY]["pinned"]) == (pins[cached]["digest"], True)
    _, resolved = run(lab, "docker.io/busybox:1.36", resolve_digest=True, command=["true"])
    assert resolved[XCOM_KEY]["digest"] == pins[cached]["digest"]
    assert resolved[XCOM_KEY]["requested"] == "docker.io/busybox:1.36"
    assert task_log(f"Resolving library/busybox:1.36 through the ECR pull-through cache as {cached}") == 1


def test_a_swarm_service_carries_the_cache_name_and_its_login(lab, aws, cache):
    ti = RecordingTI()
    op = EcrDockerSwarmOperator(task_id=f"s{uuid.uuid4().hex[:6]}", image="busybox:1.36", aws_conn_id=CONN,
                                docker_url=lab.docker_host, command=["true"], auto_remove="success")  # fmt: skip
    op.execute({"ti": ti})
    record = ti.xcom[XCOM_KEY]
    assert (record["image"], record["requested"]) == (f"{cache['cache']}/library/busybox:1.36", "busybox:1.36")
    assert record["pinned"] is True and record["reference"].endswith("@" + record["digest"])


def test_a_first_pull_the_cache_cannot_import_names_the_permissions_it_needs(lab, aws, cache):
    with pytest.raises(EcrImageNotFoundError) as caught:
        run(lab, NEVER_IMPORTED, force_pull=True, command=["true"])
    text = str(caught.value)
    cached = f"{cache['cache']}/library/busybox:1.37"
    assert text.startswith(f"Image {NEVER_IMPORTED} is pulled through the ECR pull-through cache as {cached} ")
    assert all(action in text for action in FIRST_PULL_ACTIONS), text
    assert "manifest unknown" in text  # what the registry said, kept
    # The pin task resolves it through the cache too, and fails in the same words.
    with pytest.raises(EcrImageNotFoundError) as pinning:
        EcrPinImagesOperator(task_id="pin", images=[NEVER_IMPORTED], aws_conn_id=CONN).execute({})
    assert str(pinning.value).startswith(f"Image {NEVER_IMPORTED} is pulled through the ECR pull-through cache as")
    assert all(action in str(pinning.value) for action in FIRST_PULL_ACTIONS)


def test_images_of_other_registries_are_left_alone(lab, aws, cache, task_log):
    image = f"{lab.account()['host']}/lab/busybox:1"
    _, xcom = run(lab, image, command=["true"])
    assert (xcom[XCOM_KEY]["image"], xcom[XCOM_KEY]["requested"]) == (image, image)
    assert task_log("pull-through cache") == 0


@pytest.mark.airflow_run
def test_a_dag_pulls_docker_hub_images_through_the_cache_by_configuration_alone(
    airflow: AirflowHarness, e2e_lab: dict[str, Any]
) -> None:
    rule = e2e_lab["pull_through_cache"]
    result = airflow.dags_test(DAG, extra_env={"AIRFLOW__ECR__PULL_THROUGH_CACHE": rule["option"]})
    text = result.all_text()
    latest = "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1"
    states = airflow.task_states(DAG, airflow.query(latest, DAG)[0]["run_id"])
    expected = {"pin": "success", "pinned": "success", "templated": "success", "decorated": "success"}
    assert states == {**expected, "first_pull": "failed"}, (states, result.describe())

    busybox = f"{rule['cache']}/library/busybox:1.36"
    pins = airflow.xcom(DAG, "pin")
    assert pins[busybox]["image"] == "busybox:1.36"
    pinned, templated = airflow.xcom(DAG, "pinned", XCOM_KEY), airflow.xcom(DAG, "templated", XCOM_KEY)
    for record in (pinned, templated):
        assert (record["image"], record["requested"]) == (busybox, "busybox:1.36"), record
        assert record["digest"] == pins[busybox]["digest"] and record["pinned"] is True
    assert airflow.xcom(DAG, "pinned") == "pinned" and airflow.xcom(DAG, "templated") == "templated"

    decorated = airflow.xcom(DAG, "decorated", XCOM_KEY)
    assert (decorated["image"], decorated["requested"]) == (f"{rule['cache']}/library/python:3.11", "python:3.11")
    assert airflow.xcom(DAG, "decorated") == "through-the-cache-42-py311"
    assert f"Pulling python:3.11 through the ECR pull-through cache as {rule['cache']}/library/python:3.11" in text

    first_pull = (
        f"Image {NEVER_IMPORTED} is pulled through the ECR pull-through cache as {rule['cache']}/library/busybox:1.37"
    )
    assert first_pull in text and "ecr:BatchImportUpstreamImage and ecr:CreateRepository" in text, result.describe()
