"""Replica-region fallback (issue 15) against the lab: one account's registry in two regions.

The lab replicates the first account's images to ``eu-central-1`` (same digests), with that region's
own ECR API tokens. Faults are per region: the emulator's ``down_regions`` takes a region's ECR API
out (503), stopping a registry takes its region's registry out (connection refused).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import airflow_ecr_lab as lab_module
from airflow_ecr import process_state
from airflow_ecr.exceptions import (
    EcrConfigurationError,
    EcrCredentialsError,
    EcrImageNotFoundError,
    EcrRegistryUnavailableError,
    EcrServiceError,
)
from airflow_ecr.images.record import XCOM_KEY
from airflow_ecr.operators.docker import EcrDockerOperator
from airflow_ecr.operators.images import EcrPinImagesOperator
from airflow_ecr_lab.repository import push_marker_image
from helpers.task_instance import RecordingTI

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

CONN = "aws_lab"  # the `aws` fixture (tests/conftest.py)
REPLICA_REGION = "eu-central-1"


def image(lab, name: str = "lab/busybox:1") -> str:
    return f"{lab.account()['host']}/{name}"


def run(lab, image: str, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    process_state.reset()
    ti = RecordingTI()
    options: dict[str, Any] = {"aws_conn_id": CONN, "docker_url": lab.docker_host, "network_mode": "none",
                               "auto_remove": "success", "command": ["echo", "ran"], "force_pull": True,
                               "fallback_regions": [REPLICA_REGION]}  # fmt: skip
    op = EcrDockerOperator(task_id=f"t{uuid.uuid4().hex[:6]}", image=image, **{**options, **kwargs})
    return op.execute({"ti": ti}), ti.xcom


@contextlib.contextmanager
def registry_down(lab, name: str) -> Iterator[None]:
    lab_module.stop_registry(lab.dir, name)
    try:
        yield
    finally:
        lab_module.start_registry(lab.dir, name)


def regions_called(aws) -> list[str]:
    return [c["region"] for c in aws.calls()]


def test_the_api_of_the_images_region_down_pulls_from_the_replica(lab, aws, caplog, capfd):
    aws.faults(down_regions=["eu-west-1"])
    result, xcom = run(lab, image(lab))
    assert result == "ran"
    record = xcom[XCOM_KEY]
    replica = f"111111111111.dkr.ecr.{REPLICA_REGION}.amazonaws.com"
    assert (record["region"], record["registry"], record["image"]) == (REPLICA_REGION, replica, image(lab))
    assert regions_called(aws) == ["eu-west-1", REPLICA_REGION]
    text = capfd.readouterr().out + caplog.text
    assert "ECR in eu-west-1 failed for" in text and f"from its replica in {REPLICA_REGION}" in text


def test_the_images_registry_down_pulls_from_the_replica_by_the_pinned_digest(lab, aws):
    pins = EcrPinImagesOperator(task_id="pin", images=[image(lab)], aws_conn_id=CONN).execute({})
    with registry_down(lab, lab.account()["account_id"]):
        result, xcom = run(lab, image(lab), pinned_images=pins)
    assert result == "ran"
    record = xcom[XCOM_KEY]
    assert record["region"] == REPLICA_REGION and record["digest"] == pins[image(lab)]["digest"]
    assert record["reference"].startswith(f"111111111111.dkr.ecr.{REPLICA_REGION}.amazonaws.com/lab/busybox@")


def test_refusals_and_missing_images_never_fall_back(lab, aws):
    aws.faults(deny=True)
    with pytest.raises(EcrCredentialsError):
        run(lab, image(lab))
    assert REPLICA_REGION not in regions_called(aws)
    aws.faults(deny=False)
    aws.reset()
    with pytest.raises(EcrImageNotFoundError):
        run(lab, image(lab, "lab/busybox:no-such-tag"))
    assert regions_called(aws) == ["eu-west-1"]


def test_a_fallback_that_is_not_a_replica_names_every_region_tried(lab, aws):
    repository = f"app/unreplicated-{uuid.uuid4().hex[:6]}"
    push_marker_image(lab.dir, lab.account()["account_id"], f"{repository}:1", "only here")
    with registry_down(lab, lab.account()["account_id"]), pytest.raises(EcrImageNotFoundError) as err:
        run(lab, image(lab, f"{repository}:1"))
    text = str(err.value)
    assert text.startswith(
        f"Image {image(lab, repository + ':1')} could not be pulled from any region tried (eu-west-1: "
    )
    assert f"; {REPLICA_REGION}: Image " in text and "was not found" in text


def test_every_region_failing_lists_each_and_what_it_answered(lab, aws):
    aws.faults(down_regions=["eu-west-1", REPLICA_REGION])
    with pytest.raises(EcrServiceError) as err:
        run(lab, image(lab))
    text = str(err.value)
    assert "could not be pulled from any region tried (eu-west-1: " in text and f"; {REPLICA_REGION}: " in text
    assert regions_called(aws).count(REPLICA_REGION) >= 1


@pytest.mark.parametrize(
    ("regions", "says"),
    [
        (["eu-west-1"], "fallback region eu-west-1 is the image's own region"),
        (["not-a-region"], "'not-a-region' is not an AWS region name"),
        (["cn-north-1"], "fallback region cn-north-1 is in partition aws-cn, the image's registry in aws"),
        ("eu-central-1, us-gov-west-1", "fallback region us-gov-west-1 is in partition aws-us-gov"),
    ],
)
def test_bad_fallback_regions_fail_at_parse_time_in_one_sentence(lab, regions, says):
    with pytest.raises(EcrConfigurationError, match=says):
        EcrDockerOperator(task_id="t", image=image(lab), fallback_regions=regions)


def test_a_templated_bad_fallback_fails_before_any_token(lab, aws):
    op = EcrDockerOperator(task_id="t", image=image(lab), fallback_regions="{{ params.regions }}",
                           aws_conn_id=CONN, docker_url=lab.docker_host)  # fmt: skip
    op.fallback_regions = ["eu-west-1"]  # what rendering produced
    with pytest.raises(EcrConfigurationError, match="is the image's own region"):
        op.execute({})
    assert aws.calls() == []


def test_the_registry_outage_is_classified_from_the_daemons_own_words(lab, aws):
    """Without fallback regions, a registry that is down is an outage (exit 7), not a refusal."""
    with registry_down(lab, lab.account()["account_id"]), pytest.raises(EcrRegistryUnavailableError) as err:
        run(lab, image(lab), fallback_regions=None)
    assert "connection refused" in str(err.value).lower()


# -- real Airflow --------------------------------------------------------------------------------
@pytest.mark.airflow_run
@pytest.mark.timeout(420)
def test_a_dag_run_rides_out_an_api_outage_and_a_registry_outage(airflow, ecr_admin, e2e_lab, tmp_path):
    """Airflow 3 and 2.11: both ECR tasks of the run are served by the replica, and say so."""
    account = e2e_lab["accounts"][0]
    try:
        # A cache of its own: the image's region must really be asked (and fail).
        result = airflow.dags_test("ecr_fallback", cache_dir=tmp_path / "cache")
    finally:
        ecr_admin.faults(down_regions=[])
        lab_module.start_registry(Path(e2e_lab["dir"]), account["account_id"])
    assert result.rc == 0, result.describe()
    text = result.all_text()
    for task_id, output in (("through_api_outage", "api"), ("through_registry_outage", "registry")):
        record = airflow.xcom("ecr_fallback", task_id, XCOM_KEY)
        assert record["region"] == REPLICA_REGION and record["image"].startswith(account["host"]), record
        assert airflow.xcom("ecr_fallback", task_id) == f"served-despite-{output}-outage", result.describe()
    # One warning per task, naming both regions (Airflow 2.11's dags test prints each line twice).
    warning = f"ECR in {account['region']} failed for {account['host']}/lab/busybox:1 ("
    assert text.count(warning) >= 2 and f"pulling it from its replica in {REPLICA_REGION}." in text, text
    calls = ecr_admin.calls(access_key=result.access_key)
    assert {c["region"] for c in calls} == {account["region"], REPLICA_REGION}, calls
