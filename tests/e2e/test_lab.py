"""The lab itself, proven real: boto3 tokens from the emulator open (and only open) real registries.

Everything goes through docker-py against the lab's dockerd, which pulls by real ECR names over
verified TLS, and through real boto3 against the emulator (and against moto_server for API shape).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import time
from collections.abc import Iterator
from typing import Any

import boto3
import docker
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount

pytestmark = pytest.mark.lab

NO_RETRIES = Config(retries={"total_max_attempts": 1})


def ecr_client(endpoint_url: str, region: str, service: str = "ecr") -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES,
    )


def token_for(lab: Any, account: dict[str, Any]) -> tuple[dict[str, str], datetime.datetime]:
    """A docker auth_config from a real GetAuthorizationToken call, and its expiry."""
    client = ecr_client(lab.emulator_url, account["region"])
    data = client.get_authorization_token(registryIds=[account["account_id"]])["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert data["proxyEndpoint"] == f"https://{account['host']}"
    return {"username": username, "password": password}, data["expiresAt"]


@pytest.fixture
def api(lab: Any) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=lab.docker_host, timeout=120)
    yield client
    client.close()


def forget(api: docker.APIClient, ref: str) -> None:
    """Remove a local image so that the next use really pulls."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        api.remove_image(ref, force=True)


def pull(api: docker.APIClient, ref: str, auth: dict[str, str] | None) -> None:
    """Pull ``ref``; raises docker's APIError, or RuntimeError for an error streamed after the start."""
    forget(api, ref)
    repository, tag = ref.rsplit(":", 1)
    for event in api.pull(repository, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in event:
            raise RuntimeError(event["error"])


def pull_error(api: docker.APIClient, ref: str, auth: dict[str, str] | None) -> str:
    with pytest.raises((docker.errors.APIError, RuntimeError)) as caught:
        pull(api, ref, auth)
    error = caught.value
    return str(error.explanation if isinstance(error, docker.errors.APIError) else error)


def run(api: docker.APIClient, image: str, command: list[str]) -> str:
    container = api.create_container(image, command, host_config=api.create_host_config(network_mode="none"))
    try:
        api.start(container)
        assert api.wait(container, timeout=60)["StatusCode"] == 0
        return api.logs(container).decode()
    finally:
        api.remove_container(container, force=True)


# -- registries by their real ECR names -----------------------------------------------------------
def test_pull_by_real_ecr_name_with_boto3_token(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account()
    ref = f"{account['host']}/lab/busybox:1"
    auth, expires_at = token_for(lab, account)
    assert auth["username"] == "AWS"
    assert expires_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=11)
    pull(api, ref, auth)
    assert run(api, ref, ["echo", "hello from ECR"]).strip() == "hello from ECR"
    assert [c["outcome"] for c in emulator.calls()] == ["ok"]


def test_second_account_and_anonymous_registry(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account("222222222222")
    pull(api, f"{account['host']}/app/hello:1", token_for(lab, account)[0])
    pull(api, lab.anonymous_registry["images"][0], None)


def test_python_image_runs_like_the_docker_decorator(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account("111111111111")
    ref = f"{account['host']}/lab/python:3.11"
    pull(api, ref, token_for(lab, account)[0])
    script = 'python3 -c "import json, pickle, base64, sys; print(json.dumps(sys.version_info[:2]))"'
    assert run(api, ref, ["bash", "-cx", script]).strip().endswith("[3, 11]")


def test_pull_without_credentials(lab: Any, api: docker.APIClient) -> None:
    error = pull_error(api, f"{lab.account()['host']}/lab/busybox:1", None)
    assert "no basic auth credentials" in error


def test_pull_with_wrong_password(lab: Any, api: docker.APIClient) -> None:
    error = pull_error(api, f"{lab.account()['host']}/lab/busybox:1", {"username": "AWS", "password": "wrong"})
    assert "unauthorized: authentication required" in error


def test_pull_missing_tag(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account()
    error = pull_error(api, f"{account['host']}/lab/busybox:missing", token_for(lab, account)[0])
    assert "manifest unknown" in error


def test_expired_token_is_rejected_by_the_registry(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account()
    ref = f"{account['host']}/lab/busybox:1"
    emulator.config(token_ttl=3)
    emulator.revoke(account["account_id"])  # the next call mints under the 3 s policy
    auth, expires_at = token_for(lab, account)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now < expires_at <= now + datetime.timedelta(seconds=3.5)
    pull(api, ref, auth)
    time.sleep(max(0.0, (expires_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 0.5)
    # No API call in between: the emulator's expiry timer alone locked the registry.
    assert "unauthorized: authentication required" in pull_error(api, ref, auth)
    fresh, _ = token_for(lab, account)
    assert fresh != auth
    pull(api, ref, fresh)


def test_rotation_replaces_the_password(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account()
    ref = f"{account['host']}/lab/busybox:1"
    emulator.config(token_ttl=8, rotate_fraction=0.25)
    emulator.revoke(account["account_id"])
    first, first_expiry = token_for(lab, account)
    same, same_expiry = token_for(lab, account)
    assert (same, same_expiry) == (first, first_expiry), "before rotate_fraction the token is reused"
    time.sleep(8 * 0.25 + 0.2)
    rotated, rotated_expiry = token_for(lab, account)
    assert rotated != first
    assert rotated_expiry > first_expiry
    # The record of each call says which token it handed out: by when it was minted.
    minted = [c["tokens_issued_at"] for c in emulator.calls()[-3:]]
    assert minted[0] == minted[1] and minted[2][0] > minted[0][0], minted
    assert "unauthorized: authentication required" in pull_error(api, ref, first)
    pull(api, ref, rotated)


def test_revoke(lab: Any, api: docker.APIClient, emulator: Any) -> None:
    account = lab.account()
    ref = f"{account['host']}/lab/busybox:1"
    old, _ = token_for(lab, account)
    emulator.revoke(account["account_id"])
    assert "unauthorized: authentication required" in pull_error(api, ref, old)
    new, _ = token_for(lab, account)
    assert new != old
    pull(api, ref, new)


# -- swarm ------------------------------------------------------------------------------------------
def wait_for_task(api: docker.APIClient, service_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for task in api.tasks(filters={"service": service_id}):
            if task["Status"]["State"] in ("running", "complete", "failed", "rejected"):
                return dict(task["Status"])
        time.sleep(0.2)
    raise AssertionError("the service task never started")


def test_swarm_service_pulls_with_registry_auth(lab: Any, emulator: Any) -> None:
    account = lab.account("222222222222")
    ref = f"{account['host']}/app/hello:1"
    auth, _ = token_for(lab, account)
    template = docker.types.TaskTemplate(
        container_spec=docker.types.ContainerSpec(
            image=ref, command=["sh", "-c", "trap 'exit 0' TERM; echo swarm-ok; sleep 30 & wait"]
        ),
        restart_policy=docker.types.RestartPolicy(condition="none"),
    )
    for name, credentials in (("lab-noauth", None), ("lab-auth", auth)):
        api = docker.APIClient(base_url=lab.docker_host, timeout=120)
        forget(api, ref)
        if credentials:
            # Kept in memory by docker-py and sent as X-Registry-Auth; nothing written to ~/.docker.
            api.login(registry=account["host"], reauth=True, **credentials)
        service = api.create_service(template, name=name)
        try:
            status = wait_for_task(api, service["ID"])
            if credentials:
                assert status["State"] == "running", status
                deadline = time.monotonic() + 20
                while b"swarm-ok" not in b"".join(api.service_logs(service["ID"], stdout=True)):
                    assert time.monotonic() < deadline, "no output from the service"
                    time.sleep(0.2)
            else:
                assert status["State"] == "rejected", status
                assert "No such image" in status.get("Err", ""), status
        finally:
            api.remove_service(service["ID"])
            api.close()


# -- the ECR API: faults, shapes, several accounts ---------------------------------------------------
def test_faults_are_real_client_errors(lab: Any, emulator: Any) -> None:
    client = ecr_client(lab.emulator_url, "eu-west-1")
    emulator.faults(throttle=1)
    with pytest.raises(ClientError) as caught:
        client.get_authorization_token()
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"

    emulator.faults(server_error=1)
    with pytest.raises(ClientError) as caught:
        client.get_authorization_token()
    assert caught.value.response["Error"]["Code"] == "ServerException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500

    emulator.faults(deny=["111111111111"])
    with pytest.raises(ClientError) as caught:
        client.get_authorization_token(registryIds=["111111111111"])
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "is not authorized to perform: ecr:GetAuthorizationToken" in str(caught.value)
    emulator.faults(deny=False, delay=0.5)
    started = time.monotonic()
    client.get_authorization_token()
    assert time.monotonic() - started >= 0.5

    outcomes = [c["outcome"] for c in emulator.calls()]
    assert outcomes == ["ThrottlingException", "ServerException", "AccessDeniedException", "ok"]
    assert {c["region"] for c in emulator.calls()} == {"eu-west-1"}
    assert {c["access_key_id"] for c in emulator.calls()} == {"testing"}


def test_botocore_retries_through_throttling(lab: Any, emulator: Any) -> None:
    client = boto3.client(
        "ecr", endpoint_url=lab.emulator_url, region_name="eu-west-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )  # fmt: skip
    emulator.faults(throttle=2)
    client.get_authorization_token()
    assert [c["outcome"] for c in emulator.calls()] == ["ThrottlingException", "ThrottlingException", "ok"]


def test_unknown_registry_and_missing_signature(lab: Any, emulator: Any) -> None:
    client = ecr_client(lab.emulator_url, "eu-west-1")
    with pytest.raises(ClientError) as caught:
        client.get_authorization_token(registryIds=["111111111111", "222222222222"])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    message = caught.value.response["Error"]["Message"]
    assert "222222222222" in message
    assert "eu-west-1" in message

    target = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
    unsigned = requests.post(lab.emulator_url, data=b"{}", headers={"X-Amz-Target": target}, timeout=5)
    assert unsigned.status_code == 400
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"


def test_two_accounts_in_one_call() -> None:
    """Several registry ids in one region: one authorizationData entry each (in-process emulator)."""
    accounts = [EmulatedAccount("111111111111", "eu-west-1"), EmulatedAccount("333333333333", "eu-west-1")]
    with EcrEmulator(accounts, token_ttl=60) as emulator:
        client = ecr_client(emulator.url, "eu-west-1")
        data = client.get_authorization_token(registryIds=["111111111111", "333333333333"])["authorizationData"]
        assert [d["proxyEndpoint"] for d in data] == [f"https://{a.host}" for a in accounts]
        assert len({d["authorizationToken"] for d in data}) == 2
        assert all(isinstance(d["expiresAt"], datetime.datetime) for d in data)
        assert emulator.calls()[0]["registry_ids"] == ["111111111111", "333333333333"]


def test_ecr_public_token(lab: Any, emulator: Any) -> None:
    data = ecr_client(lab.emulator_url, "us-east-1", "ecr-public").get_authorization_token()["authorizationData"]
    assert base64.b64decode(data["authorizationToken"]).startswith(b"AWS:")
    assert isinstance(data["expiresAt"], datetime.datetime)
    assert emulator.calls()[0]["target"] == "SpencerFrontendService.GetAuthorizationToken"


# -- API shape compatibility with moto ---------------------------------------------------------------
def test_same_calls_against_moto_server(lab: Any, moto_url: str, emulator: Any) -> None:
    for url in (lab.emulator_url, moto_url):
        client = ecr_client(url, "eu-west-1")
        default = client.get_authorization_token()["authorizationData"]
        assert len(default) == 1
        assert base64.b64decode(default[0]["authorizationToken"]).startswith(b"AWS:")
        assert default[0]["proxyEndpoint"].startswith("https://")
        assert isinstance(default[0]["expiresAt"], datetime.datetime)
        one = client.get_authorization_token(registryIds=["111111111111"])["authorizationData"]
        assert one[0]["proxyEndpoint"] == "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    # moto's tokens are fixed and expired from the start (2015): code trusting expiresAt never caches them.
    moto_data = ecr_client(moto_url, "eu-west-1").get_authorization_token()["authorizationData"][0]
    assert moto_data["expiresAt"].year == 2015
