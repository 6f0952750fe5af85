"""Know what ran (issue 14) against the lab: the ``ecr_image`` record, pins within a DAG run, lineage.

In-process tests drive the operators against the lab's real daemon and registries (the registry's
access log counts the requests); the DAG tests run real Airflow 3 and 2.11 (``airflow dags test``),
pushing a new image under the pinned tag in the middle of the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from airflow_ecr import process_state
from airflow_ecr.exceptions import EcrImageNotFoundError
from airflow_ecr.images.record import XCOM_KEY
from airflow_ecr.operators.docker import EcrDockerOperator, EcrDockerSwarmOperator
from airflow_ecr_lab.repository import push_index, push_marker_image, registry_requests
from helpers.airflow_harness import AirflowHarness
from helpers.task_instance import RecordingTI

pytestmark = [pytest.mark.lab, pytest.mark.timeout(420)]

CONN = "aws_lab"  # the `aws` fixture (tests/conftest.py)
REQUESTS_UA = "python-requests"


@pytest.fixture
def repository(lab) -> str:
    """A fresh repository in the first account, holding ``:1`` (marker ``one``)."""
    name = f"app/digests-{uuid.uuid4().hex[:8]}"
    push_marker_image(lab.dir, lab.account()["account_id"], f"{name}:1", "one")
    return name


@pytest.fixture
def task_log(capfd, caplog):
    """The task log so far: structlog (Airflow 3) prints it, stdlib logging (Airflow 2) records it."""
    caplog.set_level(logging.INFO)
    return lambda: capfd.readouterr().out + caplog.text


def run(lab, image: str, operator: type = EcrDockerOperator, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Execute one ECR operator as a task would; returns (its return value, its XComs)."""
    process_state.reset()
    ti = RecordingTI()
    defaults: dict[str, Any] = {"aws_conn_id": CONN, "docker_url": lab.docker_host, "command": ["cat", "/marker"]}
    if operator is EcrDockerOperator:
        defaults.update(network_mode="none", auto_remove="success")
    op = operator(task_id=f"t{uuid.uuid4().hex[:6]}", image=image, **{**defaults, **kwargs})
    return op.execute({"ti": ti}), ti.xcom


def requests_since(lab, start: int) -> list[Any]:
    return registry_requests(lab.dir, lab.account()["account_id"])[start:]


def count(lab) -> int:
    return len(registry_requests(lab.dir, lab.account()["account_id"]))


def remove_local(lab, *images: str) -> None:
    client = docker.APIClient(base_url=lab.docker_host)
    for image in images:
        with contextlib.suppress(docker.errors.NotFound):
            client.remove_image(image, force=True)


# -- record ------------------------------------------------------------------------------------
def test_a_pulling_task_records_the_digest_from_its_own_pull(lab, aws, repository, task_log):
    image = f"{lab.account()['host']}/{repository}:1"
    remove_local(lab, image)
    start = count(lab)
    result, xcom = run(lab, image, force_pull=True)
    record, log = xcom[XCOM_KEY], task_log()
    assert result == "one"
    client = docker.APIClient(base_url=lab.docker_host)
    assert record["reference"] in client.inspect_image(image)["RepoDigests"]
    assert record == {
        **record,
        "image": image,
        "registry": lab.account()["host"],
        "repository": repository,
        "tag": "1",
        "region": "eu-west-1",
        "pulled": True,
        "reference": f"{lab.account()['host']}/{repository}@{record['digest']}",
    }
    assert f"Running {record['reference']} ({image})" in log
    # Recording added no request of its own: every request is the daemon's pull.
    made = requests_since(lab, start)
    assert made and not [r for r in made if REQUESTS_UA in r.user_agent], made


def test_a_local_image_is_recorded_from_the_daemon_with_no_registry_request(lab, aws, repository, task_log):
    image = f"{lab.account()['host']}/{repository}:1"
    _, pulled = run(lab, image, force_pull=True)
    start, calls = count(lab), len(aws.calls())
    task_log()
    _, xcom = run(lab, image, force_pull=False)
    log = task_log()
    assert requests_since(lab, start) == [] and len(aws.calls()) == calls
    assert xcom[XCOM_KEY]["pulled"] is False
    assert xcom[XCOM_KEY]["digest"] == pulled[XCOM_KEY]["digest"]
    assert f"Running {pulled[XCOM_KEY]['reference']} ({image})" in log


def test_an_image_never_pulled_from_the_registry_records_no_digest_and_says_so(lab, aws, task_log):
    image = f"{lab.account()['host']}/app/built-here-{uuid.uuid4().hex[:6]}:1"
    client = docker.APIClient(base_url=lab.docker_host)
    repository, tag = image.rsplit(":", 1)
    client.tag(lab.images["busybox"], repository, tag)
    try:
        _, xcom = run(lab, image, force_pull=False, command=["true"])
    finally:
        remove_local(lab, image)
    log = task_log()
    assert xcom[XCOM_KEY]["digest"] is None and xcom[XCOM_KEY]["reference"] is None
    assert f"Image {image} is local but was never pulled from {lab.account()['host']}" in log


def test_resolve_digest_pulls_by_digest_with_one_manifest_request(lab, aws, repository, task_log):
    image = f"{lab.account()['host']}/{repository}:1"
    remove_local(lab, image)
    start = count(lab)
    _, xcom = run(lab, image, resolve_digest=True)
    log = task_log()
    ours = [r for r in requests_since(lab, start) if REQUESTS_UA in r.user_agent]
    assert [(r.method, r.manifest, r.blob) for r in ours] == [("HEAD", True, False)], ours
    record = xcom[XCOM_KEY]
    assert record["pinned"] is True and record["platform_digest"] == record["digest"]
    assert f"Resolved {image} to {record['reference']}" in log


def test_multi_arch_records_the_index_and_the_platform_digest_that_ran(lab, aws, repository):
    host, account = lab.account()["host"], lab.account()["account_id"]
    other = push_marker_image(lab.dir, account, f"{repository}:arm", "arm")
    amd = push_marker_image(lab.dir, account, f"{repository}:amd", "amd")
    index = push_index(lab.dir, account, f"{repository}:multi", {"linux/amd64": amd, "linux/arm64": other})
    image = f"{host}/{repository}:multi"
    result, xcom = run(lab, image, resolve_digest=True)
    assert result == "amd"  # the daemon (linux/amd64) ran its platform's image
    record = xcom[XCOM_KEY]
    assert (record["digest"], record["platform_digest"], record["platform"]) == (index, amd, "linux/amd64")
    # Pulled by tag without resolving, the index digest is what the pull reports.
    remove_local(lab, image, f"{host}/{repository}@{index}")
    _, plain = run(lab, image, force_pull=True)
    assert plain[XCOM_KEY]["digest"] == index


def test_a_swarm_service_runs_the_digest_it_records(lab, aws, repository):
    image = f"{lab.account()['host']}/{repository}:1"
    _, xcom = run(lab, image, EcrDockerSwarmOperator, enable_logging=True, auto_remove="success")
    record = xcom[XCOM_KEY]
    assert record["pulled"] is None and record["pinned"] is True
    assert record["reference"].endswith("@" + record["digest"])


# -- bad input ---------------------------------------------------------------------------------
def test_resolving_a_missing_tag_fails_in_one_sentence_before_any_container(lab, aws, repository):
    image = f"{lab.account()['host']}/{repository}:no-such-tag"
    client = docker.APIClient(base_url=lab.docker_host)
    before = {c["Id"] for c in client.containers(all=True)}
    with pytest.raises(EcrImageNotFoundError) as err:
        run(lab, image, resolve_digest=True)
    assert str(err.value).startswith(f"Image {lab.account()['host']}/{repository}:no-such-tag does not exist")
    assert {c["Id"] for c in client.containers(all=True)} == before


# -- real Airflow ------------------------------------------------------------------------------
DAG = "ecr_pins"  # tests/e2e/dags/ecr_pins.py


def ecr_image(airflow: AirflowHarness, dag_id: str, task_id: str) -> dict[str, Any]:
    value = airflow.xcom(dag_id, task_id, XCOM_KEY)
    assert isinstance(value, dict), f"no {XCOM_KEY} XCom for {task_id}: {value!r}"
    return value


@pytest.mark.airflow_run
def test_a_pinned_run_keeps_its_digest_when_the_tag_moves_mid_run(
    airflow: AirflowHarness, e2e_lab: dict[str, Any], tmp_path: Path
) -> None:
    """
    ``second`` runs after the tag was pushed again and still runs ``first``'s image; the lineage
    facet; and, in the same run, the pins that cannot be kept fail in one sentence each.
    """
    account = e2e_lab["accounts"][0]
    repository = f"app/pinned-{uuid.uuid4().hex[:8]}"
    first_marker, second_marker = f"first-{uuid.uuid4().hex[:6]}", f"second-{uuid.uuid4().hex[:6]}"
    lab_dir = Path(e2e_lab["dir"])
    first_digest = push_marker_image(lab_dir, account["account_id"], f"{repository}:1", first_marker)
    amd = push_marker_image(lab_dir, account["account_id"], f"{repository}:amd", "amd")
    platforms = {"linux/amd64": amd, "linux/arm64": first_digest}
    index = push_index(lab_dir, account["account_id"], f"{repository}:multi", platforms)
    doomed = push_marker_image(lab_dir, account["account_id"], f"{repository}:doomed", "doomed")
    lineage = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(lineage), "append": True}
    env = {
        "ECR_PIN_REPOSITORY": repository,
        "ECR_PIN_SECOND": second_marker,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-ecr-lab",
    }
    result = airflow.dags_test(DAG, extra_env=env)
    text = result.all_text()
    latest = "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1"
    states = airflow.task_states(DAG, airflow.query(latest, DAG)[0]["run_id"])
    kept = ("pin", "first", "repush", "second", "unpinned", "local", "multi")
    assert all(states[t] == "success" for t in kept), (states, result.describe())

    pins = airflow.xcom(DAG, "pin")
    image = f"{account['host']}/{repository}:1"
    assert pins[image]["digest"] == first_digest, pins
    assert airflow.xcom(DAG, "first") == first_marker, result.describe()
    assert airflow.xcom(DAG, "second") == first_marker, result.describe()  # the tag had moved: still pinned
    assert airflow.xcom(DAG, "unpinned") == second_marker, result.describe()  # the control: it had moved
    assert airflow.xcom(DAG, "repush") != first_digest

    first, second = ecr_image(airflow, DAG, "first"), ecr_image(airflow, DAG, "second")
    assert first["digest"] == second["digest"] == first_digest
    assert first["pinned"] and first["pulled"] and first["resolved_at"] == pins[image]["resolved_at"]
    unpinned, local = ecr_image(airflow, DAG, "unpinned"), ecr_image(airflow, DAG, "local")
    assert unpinned["pulled"] and unpinned["digest"] == airflow.xcom(DAG, "repush")
    assert local["pulled"] is False and local["digest"] == unpinned["digest"]
    multi = ecr_image(airflow, DAG, "multi")
    assert (multi["digest"], multi["platform_digest"]) == (index, amd)
    assert f"Running {first['reference']} ({image})" in text

    events = [json.loads(line) for line in lineage.read_text().splitlines() if line.strip()]
    facets = [
        e["run"]["facets"]["ecr_image"]
        for e in events
        if e.get("eventType") == "COMPLETE" and "ecr_image" in e.get("run", {}).get("facets", {})
    ]
    assert {(f["reference"], f["digest"]) for f in facets} >= {(first["reference"], first_digest)}, events[-3:]

    # The pins that cannot be kept: a missing tag fails its pin task and no container runs after it;
    # a pinned digest deleted since fails its task naming the digest and when it was resolved.
    assert (states["pin_missing"], states["never"], states["gone"]) == ("failed", "upstream_failed", "failed")
    assert f"Image {account['host']}/{repository}:no-such-tag does not exist in {account['host']}" in text
    assert airflow.xcom(DAG, "never", XCOM_KEY) is None
    resolved_at = airflow.xcom(DAG, "pin_doomed")[f"{account['host']}/{repository}:doomed"]["resolved_at"]
    expected = f"Image {account['host']}/{repository}:doomed was pinned to {doomed} (resolved at {resolved_at})"
    assert f"{expected}, which no longer exists" in text, result.describe()
