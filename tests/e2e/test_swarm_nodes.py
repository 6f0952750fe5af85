"""
Swarm services on a real multi-node swarm (``lab up --swarm``): the lab's dockerd is the manager, and
``worker-1`` / ``worker-2`` are Docker engines in namespaces of their own that have neither the test
images nor any registry login. A service placed on a worker can only start if the login it carries
(``X-Registry-Auth`` at creation) travels with it to that node: on one node the manager's own daemon
would pull and prove nothing.

Each test proves where its task ran (the task's ``NodeID``) and that the worker pulled (the image
absent from the worker's daemon before, present after).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import ContainerSpec, Placement, RestartPolicy, TaskTemplate

import airflow_ecr_lab as lab_module
from airflow_ecr import process_state
from airflow_ecr.exceptions import EcrPullError
from airflow_ecr.hooks.docker import EcrDockerHook
from airflow_ecr.operators.docker import EcrDockerSwarmOperator
from airflow_ecr.testing import running_task
from airflow_ecr_lab.spec import NODE_LABEL
from helpers.airflow_harness import new_access_key

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]

CONN = "aws_lab"
ACCOUNT = "222222222222"


# -- helpers -----------------------------------------------------------------------------------
def image_of(lab: Any, name: str = "app/hello:1") -> str:
    return f"{lab.account(ACCOUNT)['host']}/{name}"


def node(lab: Any, name: str) -> dict[str, Any]:
    nodes = {n["name"]: n for n in lab.raw.get("nodes", [])}
    if name not in nodes:
        pytest.fail(f"the lab at {lab.dir} has no swarm worker {name} (lab up --swarm)", pytrace=False)
    return nodes[name]


def on(lab_node: dict[str, Any]) -> docker.APIClient:
    return docker.APIClient(base_url=lab_node["docker_host"], timeout=60)


def placed_on(name: str) -> Placement:
    return Placement(constraints=[f"node.labels.{NODE_LABEL}=={name}"])


def repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


def images_of(lab_node: dict[str, Any], image: str) -> list[str]:
    """The image ids on ``lab_node`` of ``image``'s repository, under any tag or digest."""
    repo = repository(image)
    client = on(lab_node)
    try:
        return [
            i["Id"]
            for i in client.images()
            if any(
                r.startswith((f"{repo}@", f"{repo}:")) for r in (i.get("RepoDigests") or []) + (i.get("RepoTags") or [])
            )
        ]
    finally:
        client.close()


def forget_image(lab_node: dict[str, Any], image: str) -> None:
    """So that the node must pull ``image`` again (its containers, left by removed services, go too)."""
    client = on(lab_node)
    try:
        for image_id in images_of(lab_node, image):
            for container in client.containers(all=True, filters={"ancestor": image_id}):
                with contextlib.suppress(docker.errors.NotFound):
                    client.remove_container(container["Id"], force=True)
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_image(image_id, force=True)
    finally:
        client.close()
    assert images_of(lab_node, image) == []


@pytest.fixture
def manager(lab: Any) -> Iterator[docker.APIClient]:
    """A plain client of the manager (no login); removes the services a test leaves."""
    client = docker.APIClient(base_url=lab.docker_host, timeout=60)
    before = {s["ID"] for s in client.services()}
    try:
        yield client
    finally:
        for service in client.services():
            if service["ID"] not in before:
                with contextlib.suppress(docker.errors.NotFound):
                    client.remove_service(service["ID"])
        client.close()


def only_task(manager: docker.APIClient, service_id: str) -> dict[str, Any]:
    (task,) = manager.tasks(filters={"service": service_id})
    return task


def wait_for_task(
    manager: docker.APIClient, service_id: str, node_id: str, states: tuple[str, ...], timeout: float = 30
) -> dict[str, Any]:
    """The newest task of the service on ``node_id`` once it reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while time.monotonic() < deadline:
        tasks = [t for t in manager.tasks(filters={"service": service_id}) if t.get("NodeID") == node_id]
        seen = [(t["Status"]["State"], t["Status"].get("Err")) for t in tasks]
        for task in sorted(tasks, key=lambda t: t["CreatedAt"], reverse=True):
            if task["Status"]["State"] in states:
                return task
        time.sleep(0.2)
    raise AssertionError(f"no task of {service_id} on {node_id} in {states} after {timeout} s: {seen}")


def swarm_op(lab: Any, task_id: str, worker: str, **kwargs: Any) -> EcrDockerSwarmOperator:
    """An EcrDockerSwarmOperator placed on ``worker``, as a fresh task process runs it (empty memory cache)."""
    process_state.reset()
    kwargs.setdefault("command", ["echo", f"{task_id} ran"])
    return EcrDockerSwarmOperator(
        task_id=task_id,
        image=kwargs.pop("image", image_of(lab)),
        aws_conn_id=CONN,
        docker_url=lab.docker_host,
        placement=placed_on(worker),
        enable_logging=True,
        auto_remove="never",  # the test reads the task's node, then the `manager` fixture removes it
        **kwargs,
    )


# -- the service's login travels to the node that runs it --------------------------------------
def test_ecr_swarm_operator_runs_on_a_worker_that_has_no_image_and_no_login(lab, aws, manager, caplog, capsys):
    caplog.set_level("INFO")
    image, worker = image_of(lab), node(lab, "worker-1")
    forget_image(worker, image)
    client = on(worker)
    try:  # the worker has no login of its own: its own pull is refused
        with pytest.raises(docker.errors.APIError, match="no basic auth credentials"):
            client.pull(repository(image), tag="1")
    finally:
        client.close()

    op = swarm_op(lab, "on_worker_1", "worker-1")
    op.execute({})
    task = only_task(manager, op.service["ID"])
    assert (task["NodeID"], task["Status"]["State"]) == (worker["node_id"], "complete")
    assert re.fullmatch(
        rf"{re.escape(repository(image))}@sha256:[0-9a-f]{{64}}", task["Spec"]["ContainerSpec"]["Image"]
    )
    assert images_of(worker, image), "the worker did not pull the image"
    # The job's output, from the worker through the manager (Airflow 3 logs to stdout, 2.11 to logging).
    assert "on_worker_1 ran" in caplog.text + capsys.readouterr().out
    assert [c["registry_ids"] for c in aws.calls()] == [[ACCOUNT]]


def test_unmodified_docker_swarm_operator_through_the_secrets_backend(lab, aws, manager, monkeypatch):
    from airflow.providers.docker.operators.docker_swarm import DockerSwarmOperator

    image, worker = image_of(lab, "lab/busybox:1"), node(lab, "worker-2")
    forget_image(worker, image)
    key = new_access_key()
    kwargs = {
        "endpoint_url": lab.emulator_url,
        "region_name": "eu-west-1",
        "aws_access_key_id": key,
        "aws_secret_access_key": "testing",
        "config_kwargs": {"retries": {"total_max_attempts": 1}},
    }
    for section in ("SECRETS__BACKEND", "WORKERS__SECRETS_BACKEND"):
        monkeypatch.setenv(f"AIRFLOW__{section}", "airflow_ecr.secrets.ecr.EcrDockerConnectionBackend")
        monkeypatch.setenv(f"AIRFLOW__{section}_KWARGS", json.dumps(kwargs))
    op = DockerSwarmOperator(
        task_id="backend_on_worker_2",
        image=image,  # by tag: the provider does not resolve digests
        docker_conn_id=f"ecr:{lab.account(ACCOUNT)['host']}",
        docker_url=lab.docker_host,
        command=["echo", "backend ran"],
        placement=placed_on("worker-2"),
        enable_logging=True,
        auto_remove="never",
    )
    with running_task():  # the backend answers only inside a task
        op.execute({})
    task = only_task(manager, op.service["ID"])
    assert (task["NodeID"], task["Status"]["State"]) == (worker["node_id"], "complete")
    assert images_of(worker, image), "the worker did not pull the image"
    assert [c["registry_ids"] for c in aws.calls(access_key=key)] == [[ACCOUNT]]


def test_a_token_expiring_while_a_job_runs_and_a_second_service_after_it(lab, aws, manager, emulator):
    """The first job outlives the token its service was created with; a service created after the
    expiry (on the other worker, which must pull) gets a new token and runs too."""
    image = image_of(lab)
    one, two = node(lab, "worker-1"), node(lab, "worker-2")
    forget_image(one, image)
    forget_image(two, image)
    ttl = 6.0
    emulator.config(token_ttl=ttl, rotate_fraction=0.5)  # restored (and tokens revoked) by the fixture
    emulator.revoke(ACCOUNT)
    first_token, expires = emulator.password(ACCOUNT), time.time() + ttl  # what the first service gets

    long_job = swarm_op(lab, "long_job", "worker-1", command=["sh", "-c", f"sleep {ttl + 1:.0f}; echo done"])
    long_job.execute({})
    assert time.time() > expires  # the token the job's service carries expired while the job ran
    task = only_task(manager, long_job.service["ID"])
    assert (task["NodeID"], task["Status"]["State"]) == (one["node_id"], "complete")

    second = swarm_op(lab, "after_expiry", "worker-2")
    second.execute({})
    task = only_task(manager, second.service["ID"])
    assert (task["NodeID"], task["Status"]["State"]) == (two["node_id"], "complete")
    assert images_of(two, image) and images_of(one, image)
    assert emulator.password(ACCOUNT) != first_token
    assert len(aws.calls()) == 2  # one token per service: the second was fetched after the expiry


def test_a_task_rescheduled_after_its_token_died_fails_until_the_service_gets_a_fresh_login(
    lab, aws, manager, emulator
):
    """What docs/recipes/docker-swarm.md says about long-running services, on two real workers."""
    image = image_of(lab)
    one, two = node(lab, "worker-1"), node(lab, "worker-2")
    forget_image(one, image)
    forget_image(two, image)
    hook = EcrDockerHook(image=image, aws_conn_id=CONN, base_url=lab.docker_host)
    pinned = f"{repository(image)}@{hook.resolve_manifest(image).digest}"

    def template(worker: str) -> TaskTemplate:
        return TaskTemplate(
            container_spec=ContainerSpec(image=pinned, command=["sleep", "300"]),
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            placement=placed_on(worker),
        )

    service = hook.api_client.create_service(template("worker-1"), name=f"longrun-{time.monotonic_ns()}")
    sid = service["ID"]
    first = wait_for_task(manager, sid, one["node_id"], ("running",))

    emulator.revoke(ACCOUNT)  # the login stored in the service is dead from now on
    # Rescheduled (here: moved to worker-2, which has no copy of the image) by an update without a
    # login, as `docker service update` without --with-registry-auth: the stored login is kept.
    spec = manager.inspect_service(sid)
    manager.update_service(
        sid, version=spec["Version"]["Index"], task_template=template("worker-2"), fetch_current_spec=True
    )
    rejected = wait_for_task(manager, sid, two["node_id"], ("rejected", "failed"))
    assert "No such image" in rejected["Status"]["Err"]
    assert images_of(two, image) == []
    node_said = [line for line in Path(two["log"]).read_text().splitlines() if rejected["ID"] in line]
    assert any("pulling image failed" in line and "unauthorized" in line for line in node_said), node_said

    # The fix: update the service with a fresh login (`docker service update --with-registry-auth`
    # after a `docker login`, here through docker-py's public API); the task starts.
    process_state.reset()
    fresh = EcrDockerHook(image=image, aws_conn_id=CONN, base_url=lab.docker_host)
    fresh.resolve_manifest(image)  # the cached token is refused (401): a new one is fetched
    auth = fresh.registry_auth()
    logged_in = docker.APIClient(base_url=lab.docker_host, timeout=60)
    logged_in.login(username=auth["username"], password=auth["password"], registry=auth["serveraddress"])

    def update_with_login() -> None:
        spec = manager.inspect_service(sid)
        logged_in.update_service(
            sid, version=spec["Version"]["Index"], task_template=template("worker-2"), fetch_current_spec=True
        )

    update_with_login()
    running = wait_for_task(manager, sid, two["node_id"], ("running",))
    assert images_of(two, image)
    assert first["ID"] != running["ID"]

    # A login-only update does not restart a running task: refreshing it periodically is harmless.
    settled = wait_until_settled(manager, sid)
    update_with_login()
    time.sleep(2)
    assert wait_until_settled(manager, sid) == settled


def wait_until_settled(manager: docker.APIClient, service_id: str, timeout: float = 20) -> tuple[str, set[str]]:
    """(the one running task, every task id) once exactly one task runs and no other is meant to."""
    deadline = time.monotonic() + timeout
    tasks: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        tasks = manager.tasks(filters={"service": service_id})
        live = [t for t in tasks if t["DesiredState"] == "running"]
        if len(live) == 1 and live[0]["Status"]["State"] == "running":
            return live[0]["ID"], {t["ID"] for t in tasks}
        time.sleep(0.2)
    raise AssertionError(f"service {service_id} not settled: {[(t['DesiredState'], t['Status']) for t in tasks]}")


# -- bad input: a node that cannot reach the registry -------------------------------------------
def test_a_node_that_cannot_reach_the_registry_fails_the_task_with_the_nodes_error(lab, aws, manager):
    image, worker = image_of(lab), node(lab, "worker-1")
    forget_image(worker, image)
    op = swarm_op(lab, "cut_off", "worker-1")
    lab_module.cut_registries(lab.dir, "worker-1")
    started = time.monotonic()
    try:
        with pytest.raises(EcrPullError) as err:
            op.execute({})
    finally:
        lab_module.restore_registries(lab.dir, "worker-1")
    elapsed = time.monotonic() - started
    message = str(err.value)
    assert message.startswith(f"Swarm node worker-1 ({worker['node_id']}) could not pull {repository(image)}")
    assert "never started (the node said: No such image:" in message
    assert f"reaches {lab.account(ACCOUNT)['host']} on port 443" in message
    assert elapsed < 30, f"took {elapsed:.0f} s"
    task = only_task(manager, op.service["ID"])
    assert (task["NodeID"], task["Status"]["State"]) == (worker["node_id"], "rejected")
    assert images_of(worker, image) == []
    node_said = [line for line in Path(worker["log"]).read_text().splitlines() if task["ID"] in line]
    assert any("network is unreachable" in line for line in node_said), node_said


# -- which failures are the node's (no lab needed: a fake manager's answers) --------------------
class FakeManager:
    def __init__(self, task: dict[str, Any]) -> None:
        self.task = task

    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.task]

    def inspect_node(self, node_id: str) -> dict[str, Any]:
        return {"Description": {"Hostname": "node-a"}}


@pytest.mark.parametrize(
    ("state", "container", "err", "is_pull_error"),
    [
        ("rejected", "", "No such image: 111111111111.dkr.ecr.eu-west-1.amazonaws.com/a@sha256:" + "0" * 64, True),
        ("rejected", "", "invalid mount config for type bind", False),  # logged; the provider's error stays
        ("failed", "c0ffee", "task: non-zero exit (1)", False),  # it ran: the job's own failure
        ("complete", "c0ffee", "", False),
    ],
)
def test_only_a_task_that_never_ran_for_want_of_its_image_is_a_pull_error(
    monkeypatch, state, container, err, is_pull_error
):
    image = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/a:1"
    op = EcrDockerSwarmOperator(task_id="t", image=image, aws_conn_id=CONN)
    task = {"NodeID": "n1", "Spec": {"ContainerSpec": {"Image": image}},
            "Status": {"State": state, "Err": err, "ContainerStatus": {"ContainerID": container}}}  # fmt: skip
    monkeypatch.setattr(EcrDockerSwarmOperator, "cli", FakeManager(task))
    op.service = {"ID": "s1"}
    assert op._service_status() == state
    failure = op._node_failure()
    assert isinstance(failure, EcrPullError) is is_pull_error
    if is_pull_error:
        assert str(failure).startswith(f"Swarm node node-a (n1) could not pull {image}, so the service's task")
        assert "111111111111.dkr.ecr.eu-west-1.amazonaws.com on port 443" in str(failure)
